"""The server's settings, read once from the environment when the dashboard starts.

Every limit a teacher may change is an ``MLP_LAB_*`` variable. A value that is not a
positive number is reported in the server's log and the default is used, so a typo
never goes unnoticed and never stops the class.
"""

from __future__ import annotations

import logging
import os

from mlp_core.env import debug_mode

log = logging.getLogger("mlp_lab")


def env_number(name: str, default, cast):
    """The positive number in ``$name``, or ``default`` (with a warning if it was set badly)."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = cast(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not value > 0 or value != value or value == float("inf"):
        log.warning("%s=%r is not a positive %s; using the default, %s", name, text,
                    "whole number" if cast is int else "number", default)
        return default
    return value


def cpu_count() -> int:
    """Cores this process may use (a container's limit, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


MAX_STEPS_PER_RUN = env_number("MLP_LAB_MAX_STEPS", 50_000, int)  # the Steps slider's top
MAX_SECONDS_PER_RUN = env_number("MLP_LAB_MAX_SECONDS", 120.0, float)  # wall time of one run
# A run waiting for a free trainer gives up after this long (the student is told and can
# queue again): a tab left open on a busy server does not hold a place in line forever.
MAX_WAIT_SECONDS = env_number("MLP_LAB_MAX_WAIT_SECONDS", 600.0, float)
# Runs training at once, all sessions together: one per core but one (each run keeps a core
# busy with one BLAS thread), so a core stays free for drawing every student's pages, which
# also need Python's GIL the trainers share with them; further runs wait in line instead of
# slowing everybody down. At least one, of course.
MAX_ACTIVE_RUNS = env_number("MLP_LAB_MAX_RUNS", max(1, cpu_count() - 1), int)
MAX_UPLOAD_BYTES = 20 * 2**20  # uploaded model files; .streamlit/config.toml's maxUploadSize too
DEBUG = debug_mode()  # MLP_LAB_DEBUG: tracebacks instead of the friendly error message


def status_dir() -> str | None:
    """``MLP_LAB_STATUS_DIR``: the folder where the server keeps ``trainers.json`` up to
    date (the live trainer counts, read by the browser tests and the load test)."""
    return os.environ.get("MLP_LAB_STATUS_DIR") or None
