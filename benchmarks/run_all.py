"""Every MLP Lab benchmark in one run, one table: figure, ours, reference, ratio, target.

    python benchmarks/run_all.py                   # the full run, several minutes; writes
                                                   # benchmarks/results.json and RESULTS.md
    python benchmarks/run_all.py --quick           # tiny sizes: a smoke test (< 1 minute)
    python benchmarks/run_all.py --json            # the JSON as the last line of stdout
    python benchmarks/run_all.py --out FILE.json   # also write FILE.json and FILE.md
    python benchmarks/run_all.py --only keras flops
    python benchmarks/run_all.py --render benchmarks/results.json   # rewrite RESULTS.md only

The benchmarks run one after another, each in its own process (so one's threads, imports
and memory cannot slow the next), and each interleaves its own contenders:

  profile    where one training step's time goes, in microseconds (bench_profile.py)
  flops      training FLOP/s vs a loop of only the same matmuls (bench_flops.py)
  keras      samples/s and test accuracy vs Keras and PyTorch on the identical model
             (bench_keras.py; PyTorch is optional: without it, its rows are skipped, saying so)
  notebook   20,000 one-sample steps of the notebook model (bench_notebook.py)
  dashboard  the dashboard's background trainer vs the CLI (bench_dashboard.py)
  accuracy   train --model dense --time-budget 30 / 60, several seeds (bench_accuracy.py)

Exit status: 0 when every benchmark ran (whether or not it met its target; with --strict
a missed target also gives 1), 1 when one failed to run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import benchlib as common

BENCHMARKS = {
    "profile": "bench_profile",
    "flops": "bench_flops",
    "keras": "bench_keras",
    "notebook": "bench_notebook",
    "dashboard": "bench_dashboard",
    "accuracy": "bench_accuracy",
}
# The figures the issue asks for, in the order of the README table.
HEADLINE = ["keras_speedup", "keras_test_accuracy", "torch_speedup", "torch_test_accuracy", "flops_ratio",
            "accuracy_30s", "accuracy_60s", "notebook_20k", "dashboard_ratio"]
DEFAULT_OUT = common.BENCH_DIR / "results.json"


def run_benchmark(name: str, quick: bool, timeout: float) -> dict:
    module = BENCHMARKS[name]
    argv = [sys.executable, str(common.BENCH_DIR / f"{module}.py"), "--json"] + (["--quick"] if quick else [])
    common.log(f"== {name}: {' '.join(Path(a).name if i < 2 else a for i, a in enumerate(argv))}")
    start, load_before = time.perf_counter(), _load()
    try:
        # stderr (progress and the human table) goes straight to ours; stdout is the JSON.
        proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, cwd=common.ROOT,
                              timeout=timeout, env=common.subprocess_env())
    except subprocess.TimeoutExpired:
        return {"benchmark": name, "error": f"timed out after {timeout:g} s", "figures": []}
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"benchmark": name, "error": f"exited with status {proc.returncode}", "figures": [],
                "harness_seconds": seconds}
    try:
        result = common.last_json_line(proc.stdout)
    except ValueError as exc:
        return {"benchmark": name, "error": str(exc), "figures": [], "harness_seconds": seconds}
    result["harness_seconds"] = seconds  # this benchmark's whole run, start-up included
    result["load_average"] = {"before": load_before, "after": _load()}  # 1-minute, of the machine
    return result


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def ordered_figures(results: dict) -> list[dict]:
    """Headline figures first, in HEADLINE's order, each followed by the detail rows that
    follow it in its benchmark; then every other figure (profile rows, quick-run rows)."""
    groups = []  # (headline id or None, [figures])
    for name, result in results.items():
        for f in result.get("figures", []):
            f = dict(f, benchmark=name)
            if f["id"] in HEADLINE or not groups or groups[-1][2] != name or not f["name"].startswith("  "):
                groups.append((f["id"] if f["id"] in HEADLINE else None, [f], name))
            else:
                groups[-1][1].append(f)
    rank = {fid: i for i, fid in enumerate(HEADLINE)}
    groups.sort(key=lambda g: rank.get(g[0], len(HEADLINE)))  # stable: others keep their order
    return [f for _, figs, _ in groups for f in figs]


def markdown_table(figures) -> str:
    lines = ["| figure | ours | reference | ratio | target | result |", "|---|---|---|---|---|---|"]
    for f in figures:
        ref = common.fmt_value(f["reference"], f["unit"])
        if f.get("ref_name") and f["reference"] is not None:
            ref = f"{ref} ({f['ref_name']})"
        name = f["name"].strip()
        name = f"&nbsp;&nbsp;{name}" if f["name"].startswith("  ") else f"**{name}**" if f.get("goal") else name
        result = {True: "**pass**", False: "**FAIL**", None: ""}[f["pass"]]
        lines.append(f"| {name} | {common.fmt_value(f['ours'], f['unit'])} | {ref} | "
                     f"{common.fmt_ratio(f['ratio']) if f['ratio'] is not None else ''} | "
                     f"{f['target'] or ''} | {result} |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    m = report["machine"]
    load = ", ".join(f"{x:.1f}" for x in m["load_average"]) if m.get("load_average") else "?"
    parts = [
        "# MLP Lab benchmarks" + (" (quick smoke run: tiny sizes, not the real figures)" if report["quick"] else ""),
        "",
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores (load average at the start: {load}); "
        f"Python {m['python']}, NumPy {m['numpy']} ({m['blas']}, {m['blas_threads']} BLAS threads by "
        f"default), TensorFlow {m['tensorflow']} / Keras {m['keras']}"
        f"{', PyTorch ' + m['torch'] if m.get('torch') else ''}; commit {report.get('commit') or '?'}. "
        f"The whole run took {report['seconds'] / 60:.1f} minutes.",
        "",
        "Reproduce: `" + report["command"] + "`",
        "",
        markdown_table(report["figures"]),
        "",
        "Ratios are ours / reference (for the profile rows: the step's time / its matmuls' time). "
        "Speeds are medians of interleaved measurements (ours, reference, ours, ...); "
        "see `benchmarks/README.md` for what each figure measures.",
    ]
    if report.get("skipped"):
        parts += ["", "Left out: " + "; ".join(f"{s['benchmark']}: {s['reason']}" for s in report["skipped"])]
    if report["errors"]:
        parts += ["", "Benchmarks that failed to run: " + "; ".join(
            f"{e['benchmark']}: {e['error']}" for e in report["errors"])]
    parts += ["", "## Details", ""]
    for name, result in report["benchmarks"].items():
        if "error" in result:
            continue
        try:
            text = importlib.import_module(BENCHMARKS[name]).human(result)
        except Exception as exc:  # noqa: BLE001 (a detail table must not sink the report)
            text = f"(could not render: {exc})"
        took = result.get("harness_seconds", result.get("seconds"))  # "seconds": runs before 2b28164
        took = f" ({took:.0f} s" if isinstance(took, (int, float)) else " ("
        load = result.get("load_average") or {}
        if load.get("before") is not None and load.get("after") is not None:
            took += f"; machine load {load['before']:.1f} before, {load['after']:.1f} after"
        took = "" if took == " (" else took + ")"
        parts += [f"### {name}{took}", "", "```", text, "```", ""]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test (< 1 minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--out", type=Path, help="write the results here (JSON) and a Markdown table "
                        "beside it; default for a full run: benchmarks/results.json and RESULTS.md; "
                        "a --quick run writes nothing unless --out is given")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark (default 1800)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: rewrite the Markdown of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.render is not None:
        md = args.render.parent / "RESULTS.md" if args.render.name == "results.json" else args.render.with_suffix(".md")
        md.write_text(markdown(json.loads(args.render.read_text())) + "\n")
        common.log(f"wrote {md}")
        return 0

    names = args.only or list(BENCHMARKS)
    machine = common.machine_info()
    commit = common.commit()  # what is measured: taken now, not after the run
    common.log(f"machine: {machine['cpu']}, {machine['cores']} cores, NumPy {machine['numpy']} "
               f"({machine['blas_threads']} BLAS threads), TensorFlow {machine['tensorflow']}; "
               f"load {machine['load_average']}")
    start = time.perf_counter()
    results = {name: run_benchmark(name, args.quick, args.timeout) for name in names}
    errors = [{"benchmark": n, "error": r["error"]} for n, r in results.items() if "error" in r]
    skipped = [{"benchmark": n, "reason": reason}
               for n, r in results.items() for reason in r.get("skipped", [])]
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "") + (
        f" --only {' '.join(names)}" if args.only else "")
    report = {
        "command": command,
        "quick": args.quick,
        "machine": machine,
        "commit": commit,
        "seconds": time.perf_counter() - start,
        "figures": ordered_figures(results),
        "errors": errors,
        "skipped": skipped,  # contenders a benchmark left out, and why (e.g. PyTorch not installed)
        "benchmarks": results,
    }
    report = common.clean(report)

    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        md = out.parent / "RESULTS.md" if out.name == "results.json" else out.with_suffix(".md")
        out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
        md.write_text(markdown(report) + "\n")
        common.log(f"wrote {out} and {md}")

    text = (f"\nMLP Lab benchmarks{' (quick)' if args.quick else ''}: {machine['cpu']}, {machine['cores']} "
            f"cores, {report['seconds'] / 60:.1f} min\n\n" + common.figures_table(report["figures"]))
    if skipped:
        text += "\n\nleft out: " + "; ".join(f"{s['benchmark']}: {s['reason']}" for s in skipped)
    if errors:
        text += "\n\nfailed to run: " + "; ".join(f"{e['benchmark']}: {e['error']}" for e in errors)
    if args.json:
        print(text, file=sys.stderr, flush=True)
        print(json.dumps(report, allow_nan=False), flush=True)
    else:
        print(text, flush=True)
    if errors:
        return 1
    if args.strict and any(f["pass"] is False for f in report["figures"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
