"""A real `streamlit run dashboard.py` on 127.0.0.1 for tests and the load test: a free
port, its trainer counts published to a temporary ``MLP_LAB_STATUS_DIR``, its output in
a log file; stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    """A free port: any (the system's choice), or the first free one of
    ``MLP_LAB_SERVER_PORTS`` ("8611-8619") when a shared machine gives each user a range."""
    wanted = os.environ.get("MLP_LAB_SERVER_PORTS", "").strip()
    if wanted:
        low, _, high = wanted.partition("-")
        for port in range(int(low), int(high or low) + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in MLP_LAB_SERVER_PORTS={wanted}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run dashboard.py` on 127.0.0.1, publishing its trainer counts."""

    def __init__(self, max_runs: int | None = None, env: dict | None = None):
        self.status_dir = Path(tempfile.mkdtemp(prefix="mlp-lab-status-"))
        self.log_path = self.status_dir / "server.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Its own store, unless the caller gives one (a restart that finds the same students).
        environment = {**os.environ, "PYTHONUNBUFFERED": "1",
                       "MLP_LAB_STATUS_DIR": str(self.status_dir),
                       "MLP_LAB_DATA_DIR": str(self.status_dir / "data"), **(env or {})}
        environment.pop("MLP_LAB_DEBUG", None)
        self.data_dir = Path(environment["MLP_LAB_DATA_DIR"])  # the store of the students' work
        if max_runs:
            environment["MLP_LAB_MAX_RUNS"] = str(max_runs)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "dashboard.py",
                 "--server.headless", "true", "--server.address", "127.0.0.1",
                 "--server.port", str(self.port), "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not become healthy in 60 s:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15.0, after: int = 0) -> str:
        """Wait until ``text`` appears in the server's output (past offset ``after``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()[after:]
            if text in log:
                return log
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the server log after {timeout} s:\n{self.log()[-3000:]}")

    def trainers(self) -> dict:
        """The server's own counts: live trainer threads, runs training, runs waiting."""
        path = self.status_dir / "trainers.json"
        if not path.exists():
            return {"threads": 0, "running": 0, "waiting": 0}
        return json.loads(path.read_text())

    def shared_mb(self) -> float:
        """MB of shared training copies the server holds now (``shared.json``, written by
        ``mlp_lab.shared_data`` each time it makes one), 0 before the first."""
        path = self.status_dir / "shared.json"
        return float(json.loads(path.read_text())["mb"]) if path.exists() else 0.0

    def shared_making(self) -> int:
        """How many shared training copies the server is making now (``shared.json``)."""
        path = self.status_dir / "shared.json"
        return int(json.loads(path.read_text()).get("making", 0)) if path.exists() else 0

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        shutil.rmtree(self.status_dir, ignore_errors=True)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
