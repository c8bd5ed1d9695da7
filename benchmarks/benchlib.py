"""What every benchmark script shares: paths, BLAS threads, timing helpers, the figure
record, tables, JSON output and the machine description.

A *figure* is one line of the results table::

    {"id": "keras_speedup", "name": "...", "ours": 1.0, "reference": 2.0, "ratio": 0.5,
     "unit": "samples/s", "target": ">= 3.0x", "goal": {"on": "ratio", "op": ">=", "value": 3.0},
     "pass": False}

``ratio`` is ours / reference unless a figure says otherwise; ``goal`` says which number
is held to the target, so ``pass`` can be recomputed by any reader of results.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:  # the installed package (pip install -e .): BLAS threads are set as mlp_core sets them
    from mlp_core.blas import blas_threads, set_blas_threads  # the scripts call common.*
except ImportError as exc:  # a script run as python benchmarks/x.py finds mlp_core only installed
    raise SystemExit(f"benchmarks: {exc}; install the project first: pip install -e . "
                     "(from the repository root)") from exc

ROOT = Path(__file__).resolve().parents[1]  # the repository: where git and the scripts run
BENCH_DIR = Path(__file__).resolve().parent

# Quiet TensorFlow in every process that imports it (set before it is imported).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ----------------------------------------------------------------------------- BLAS threads
# blas_threads() and set_blas_threads(n) are mlp_core.blas's (imported above): the
# benchmarks set and read the thread count exactly as the CLI and the dashboard do.
def switch_blas_threads(n: int, settle: float = 0.25) -> None:
    """Set the BLAS thread count, then wait ``settle`` seconds: OpenBLAS threads that are
    no longer needed spin for a while before they sleep, and would steal CPU from whatever
    is timed next."""
    set_blas_threads(n)
    time.sleep(settle)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- statistics
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values) -> dict:
    """min / median / max / all of a list of measurements."""
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None, "values": []}
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "values": list(values)}


def ratio(a, b):
    return a / b if (a is not None and b) else None


# ----------------------------------------------------------------------------- figures
def figure(fid: str, name: str, ours, reference=None, *, unit: str = "", ref_name: str = "",
           ratio_value=None, goal: dict | None = None, note: str = "") -> dict:
    """One row of the results table. ``goal``: {"on": "ratio"|"ours", "op": ">="|"<=", "value": x}."""
    if ratio_value is None and reference:
        ratio_value = ratio(ours, reference)
    row = {"id": fid, "name": name, "ours": ours, "reference": reference, "ref_name": ref_name,
           "ratio": ratio_value, "unit": unit, "goal": goal, "target": describe_goal(goal, unit),
           "note": note}
    row["pass"] = judge(row)
    return row


def describe_goal(goal: dict | None, unit: str = "") -> str:
    if not goal:
        return ""
    value = goal["value"]
    if goal["on"] == "ratio":
        return f"{goal['op']} {value:g}x"
    if unit == "accuracy":
        return f"{goal['op']} {value:.1%}"
    return f"{goal['op']} {value:g} {unit}".strip()


def judge(row: dict):
    goal = row.get("goal")
    if not goal:
        return None
    value = row.get(goal["on"])
    if value is None or not math.isfinite(value):
        return False
    return value >= goal["value"] if goal["op"] == ">=" else value <= goal["value"]


def fmt_value(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit == "accuracy":
        return f"{value:.2%}"
    if unit in ("s",):
        return f"{value:.2f} s"
    if unit in ("GFLOP/s",):
        return f"{value:.1f} GFLOP/s"
    if unit == "us":
        return f"{value:,.0f} us"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.3g} {unit}".strip()


def fmt_ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_pass(value) -> str:
    return {True: "PASS", False: "FAIL", None: "-"}[value]


def table(headers, rows) -> str:
    """A small aligned text table."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def figures_table(figs) -> str:
    headers = ["figure", "ours", "reference", "ratio", "target", "result"]
    rows = []
    for f in figs:
        ref = fmt_value(f["reference"], f["unit"])
        if f.get("ref_name") and f["reference"] is not None:
            ref = f"{ref} ({f['ref_name']})"
        rows.append([f["name"], fmt_value(f["ours"], f["unit"]), ref, fmt_ratio(f["ratio"]),
                     f["target"] or "-", fmt_pass(f["pass"])])
    return table(headers, rows)


# ----------------------------------------------------------------------------- output
def clean(value):
    """JSON-safe copy (NumPy scalars to Python, non-finite floats to None)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def arguments(doc: str, quick_help: str = "tiny sizes: a smoke test") -> argparse.ArgumentParser:
    """The options every benchmark script has: --quick and --json (add your own)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return parser


def simple_main(doc: str, run, human):
    """``main`` of a benchmark script whose only options are --quick and --json."""
    def main(argv=None) -> int:
        args = arguments(doc).parse_args(argv)
        emit(run(args.quick), args.json, human)
        return 0
    return main


def emit(result: dict, as_json: bool, human) -> None:
    """Print the human table (stderr when --json) and, with --json, one JSON last line."""
    if as_json:
        print(human(result), file=sys.stderr, flush=True)
        print(json.dumps(clean(result), allow_nan=False), flush=True)
    else:
        print(human(result), flush=True)


def log(message: str) -> None:
    """Progress for the person waiting, on stderr (stdout stays for the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def subprocess_env(blas_threads: int | None = None) -> dict:
    env = dict(os.environ)
    env.pop("MLP_LAB_DEBUG", None)  # mlp_core comes from the installed package (pip install -e .)
    if blas_threads is not None:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
    return env


def run_cli(args, timeout: float = 600, blas_threads: int | None = None) -> dict:
    """``python -m mlp_core ARGS --json`` in a subprocess; its JSON last line."""
    proc = subprocess.run([sys.executable, "-m", "mlp_core", *map(str, args), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=subprocess_env(blas_threads))
    if proc.returncode != 0:
        raise RuntimeError(f"python -m mlp_core {' '.join(map(str, args))} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-2000:]}")
    return last_json_line(proc.stdout)


# ----------------------------------------------------------------------------- the machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str):
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _blas_name() -> str | None:
    try:
        import numpy as np

        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 (older NumPy: not essential)
        return None


def machine_info() -> dict:
    """What the figures were measured on (TensorFlow's version without importing it)."""
    import numpy as np

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_name(),
        "blas_threads": blas_threads(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "torch": _version("torch"),  # None: not installed (the PyTorch rows are then skipped)
        "load_average": list(load) if load else None,
        "platform": platform.platform(),
    }


def commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "mlp_core"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip() + (" (mlp_core modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


# ----------------------------------------------------------------------------- worker processes
class Worker:
    """A benchmark worker in its own process, driven one command at a time.

    Interleaved comparisons (ours epoch, Keras epoch, ours, Keras, ...) run each contender
    in its own process, so they never share an interpreter, a lock or a thread pool, and
    an idle contender waits on a pipe, using no CPU while the other one is timed.
    The worker reads one JSON command per line on stdin and answers one JSON line; see
    ``serve``. Its stderr goes to a log file, shown if it fails.
    """

    def __init__(self, name: str, argv: list[str], env: dict | None = None):
        import queue
        import tempfile
        import threading

        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
                                     cwd=ROOT, env=env or subprocess_env())
        self._lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)  # the worker ended

    def receive(self, timeout: float = 600) -> dict:
        import queue

        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"worker {self.name}: no answer within {timeout:g} s{self._tail()}") from None
        if line is None:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"worker {self.name} exited ({self.proc.returncode}){self._tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"worker {self.name}: {answer['error']}{self._tail()}")
        return answer

    def call(self, timeout: float = 600, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.receive(timeout)

    def _tail(self) -> str:
        try:
            self.log.flush()
            text = Path(self.log.name).read_text(errors="replace").strip()
        except OSError:
            return ""
        return f"\n--- its stderr (last lines) ---\n{text[-3000:]}" if text else ""

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.log.close()
            try:
                os.unlink(self.log.name)
            except OSError:
                pass


def serve(handlers: dict, ready: dict) -> None:
    """The worker side of ``Worker``: answer JSON commands from stdin until "quit".

    stdout is reserved for the answers: anything else that writes to file descriptor 1
    (a library's banner, TensorFlow) is sent to stderr instead.
    """
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(obj):
        answers.write(json.dumps(clean(obj), allow_nan=False) + "\n")
        answers.flush()

    answer({"ready": True, **ready})
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command.pop("cmd")
        if cmd == "quit":
            break
        try:
            answer(handlers[cmd](**command))
        except Exception as exc:  # noqa: BLE001 (reported to the parent, which raises)
            import traceback

            traceback.print_exc()
            answer({"error": f"{type(exc).__name__}: {exc}"})
