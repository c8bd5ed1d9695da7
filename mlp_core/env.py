"""Settings read from the environment that the engine and the dashboard share."""

from __future__ import annotations

import os

_OFF = ("", "0", "false", "no", "off")


def debug_mode() -> bool:
    """``MLP_LAB_DEBUG``: on for 1/true/yes (any value but empty, 0, false, no, off).

    When on, an unexpected error shows its traceback (the CLI, the dashboard's pages)
    instead of the short message users get."""
    return os.environ.get("MLP_LAB_DEBUG", "").strip().lower() not in _OFF
