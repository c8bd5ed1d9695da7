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
# Rerun requests one browser session may send: a burst of RERUN_BURST, then RERUN_RATE a
# second (clicks, page switches and the live charts' refreshes make one or two a second).
# Beyond that they are dropped as they arrive, before Streamlit starts a script run: one
# client flooding requests (hundreds a second) then costs the server almost nothing.
RERUN_RATE = env_number("MLP_LAB_RERUN_RATE", 5.0, float)
RERUN_BURST = env_number("MLP_LAB_RERUN_BURST", 30, int)


def _meminfo_bytes(field: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit_bytes() -> int | None:
    """The container's memory limit (cgroup v2, else v1), if there is one."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max", or v1's "no limit" of ~2**63
            return int(text)
    return None


def default_memory_mb() -> float:
    """Half of the memory this server may use when it starts: the smaller of the machine's
    MemAvailable and the container's limit (the other half is for the process itself,
    MNIST, Streamlit, the pages and what else runs on the machine). 2 GB if neither can be
    read."""
    known = [b for b in (_meminfo_bytes("MemAvailable"), _cgroup_limit_bytes()) if b]
    return max(256.0, min(known) / 2 / 2**20) if known else 2048.0


# Memory all the labs in memory may take together (their models' estimates,
# mlp_lab.budget.estimate_bytes); a new model beyond it is refused.
MEMORY_BUDGET_BYTES = int(env_number("MLP_LAB_MEMORY_MB", round(default_memory_mb()), float) * 2**20)
MAX_UPLOAD_BYTES = 20 * 2**20  # uploaded model files; .streamlit/config.toml's maxUploadSize too
# Uploaded files Streamlit holds in memory (mlp_lab.uploads): a session keeps its newest
# UPLOADS_KEPT_PER_SESSION; it may upload UPLOAD_BURST at once, then UPLOAD_RATE a second;
# all sessions together hold at most UPLOADS_TOTAL_BYTES.
UPLOADS_KEPT_PER_SESSION = env_number("MLP_LAB_UPLOADS_KEPT_PER_SESSION", 2, int)
UPLOAD_RATE = env_number("MLP_LAB_UPLOAD_RATE", 0.2, float)
UPLOAD_BURST = env_number("MLP_LAB_UPLOAD_BURST", 5, int)
UPLOADS_TOTAL_BYTES = int(env_number("MLP_LAB_UPLOADS_TOTAL_MB", 200.0, float) * 2**20)
DEBUG = debug_mode()  # MLP_LAB_DEBUG: tracebacks instead of the friendly error message


def status_dir() -> str | None:
    """``MLP_LAB_STATUS_DIR``: the folder where the server keeps ``trainers.json`` up to
    date (the live trainer counts, read by the browser tests and the load test)."""
    return os.environ.get("MLP_LAB_STATUS_DIR") or None


# --- the store of students' work (mlp_lab/store.py) -----------------------------------------
# Bytes one student's saved lab and kept models may take together, and all students together.
STORE_MAX_STUDENT_BYTES = int(env_number("MLP_LAB_STORE_STUDENT_MB", 20.0, float) * 2**20)
STORE_MAX_TOTAL_BYTES = int(env_number("MLP_LAB_STORE_TOTAL_MB", 2048.0, float) * 2**20)
# A student whose work was not saved for this many days is removed by the store's cleanup.
STORE_KEEP_DAYS = env_number("MLP_LAB_STORE_KEEP_DAYS", 30.0, float)
# Seconds a write waits for another thread's or process's write to finish before giving up.
STORE_BUSY_SECONDS = env_number("MLP_LAB_STORE_BUSY_SECONDS", 10.0, float)


# While a long run goes, the lab is saved this often (and at once at the end of every run,
# on a new model, an upload, a new learning rate): a server that dies loses at most this.
SAVE_SECONDS = env_number("MLP_LAB_SAVE_SECONDS", 5.0, float)
# A browser that disconnected (Wi-Fi, a laptop lid, a closed tab) has this long to come back
# before its run is stopped and its lab leaves the server's memory: Streamlit keeps a
# disconnected session for 120 s (server.disconnectedSessionTTL). A lab with nothing going
# and nothing unsaved leaves memory sooner; it comes back from the store when needed.
RECONNECT_SECONDS = env_number("MLP_LAB_RECONNECT_SECONDS", 120.0, float)
IDLE_IN_MEMORY_SECONDS = env_number("MLP_LAB_IDLE_IN_MEMORY_SECONDS", 30.0, float)


def data_dir() -> str:
    """``MLP_LAB_DATA_DIR``: the folder of the store (``lab.sqlite3``), else the per-user data
    folder, ``$XDG_DATA_HOME/mlp-lab`` or ``~/.local/share/mlp-lab``. Read at each call (tests
    set it); the store creates the folder on first use."""
    chosen = os.environ.get("MLP_LAB_DATA_DIR")
    if chosen and chosen.strip():
        return os.path.expanduser(chosen)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "mlp-lab")
