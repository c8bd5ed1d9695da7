"""A closed tab's memory really goes back to the system (issue #16), measured as the RSS of
a real ``streamlit run dashboard.py``: the largest network's link opened and closed a few
times, then the labs leave memory (3 s windows) and the RSS comes back near the start.
``python -m loadtest.memory`` is the 20-cycle version (figures in README)."""

from __future__ import annotations

import json

import pytest

from loadtest.memory import MEMORY_ENV, open_close_loop
from loadtest.server import Server
from test_protocol_load import run_in_own_loop

pytestmark = pytest.mark.slow


def test_closing_big_networks_gives_the_memory_back():
    server = Server(env=MEMORY_ENV)
    try:
        report = run_in_own_loop(open_close_loop(server, cycles=6, settle=14.0))
    finally:
        server.stop()
    print(json.dumps(report))
    assert report["errors"] == [] and report["tracebacks"] == 0
    assert report["labs_left_memory"] >= 7
    # Before the fix each cycle kept ~45 MB (+270 MB for 6); now a few MB remain.
    assert report["after_minus_before_mb"] < 150, report
