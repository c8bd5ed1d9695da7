"""Training throughput through the dashboard's background trainer vs the CLI.

    python benchmarks/bench_dashboard.py [--quick] [--steps 2000] [--rounds 5] [--json]

Dashboard: in this process, set up as the Streamlit server sets itself up (importing
``mlp_lab.session``, which e.g. sets the BLAS thread count): ``mlp_lab.lab.LabSession``
with the dense preset (what the Model page starts with), ``lab.start(steps)`` as the
Train button does, and, while the run goes, the Train page's polling: ``lab.status()``
and ``lab.snapshot(include_params=False)`` once a second (``mlp_lab.session.POLL_SECONDS``).
Its throughput = steps x batch / wall time of the run, from the start of the thread to
its end, so it includes what the dashboard adds (the validation check every 100 steps on
1,000 held-out images, the polling). The dashboard's own figure
(``status().samples_per_second``, validation time excluded) is reported next to it.

CLI: ``python -m mlp_core train --model dense --steps N --no-augment --json`` (the dense
preset as the Model page starts with it: without its distortions) with its own defaults
(e.g. its BLAS threads); its samples_per_second counts training steps only (start-up,
data loading and the test evaluation are excluded). Both start from seed 0. The runs are
interleaved: dashboard, CLI, dashboard, CLI, ...
"""

from __future__ import annotations

import sys
import time

import benchlib as common


def _poll(lab, stop_when_done) -> int:
    """The Train page's fragment, once a second while the run goes. Returns the polls made."""
    polls = 0
    while not stop_when_done():
        lab.status()
        lab.snapshot(include_params=False)
        polls += 1
        for _ in range(20):  # wake up every 50 ms to notice the end, poll once a second
            if stop_when_done():
                break
            time.sleep(0.05)
    return polls


def dashboard_run(steps: int) -> dict:
    """One run through mlp_lab's LabSession, polled like the page polls it."""
    from mlp_lab.choices import ModelChoice
    from mlp_lab.lab import LabSession

    lab = LabSession(ModelChoice.preset("dense"))  # seed 0, fresh weights, as a new visitor gets
    try:
        message = lab.start(steps)
        if message:
            raise RuntimeError(f"LabSession.start refused: {message}")
        polls = _poll(lab, lambda: not lab.running)
        info = lab.run_info
        status = lab.status()
        wall = info.ended - info.started
        if info.status not in ("finished", "time_up"):
            raise RuntimeError(f"the dashboard run ended as {info.status!r}")
        batch = lab.choice.batch_size
        return {"api": "mlp_lab.lab.LabSession", "steps": info.result_steps, "wall_seconds": wall,
                "samples_per_second": info.result_steps * batch / wall,
                "reported_samples_per_second": status.samples_per_second,
                "train_seconds": info.result_seconds, "polls": polls, "status": info.status,
                "model": lab.model.describe()}
    finally:
        lab.close()


def run(quick: bool = False, steps: int | None = None, rounds: int | None = None) -> dict:
    steps = steps or (150 if quick else 2000)
    rounds = rounds or (1 if quick else 5)
    api = "mlp_lab.lab.LabSession"
    try:  # what the Streamlit server process sets up on import (e.g. its BLAS thread count)
        import mlp_lab.session  # noqa: F401
    except Exception as exc:  # noqa: BLE001 (streamlit missing or the glue changed: go on without)
        common.log(f"dashboard: mlp_lab.session not imported ({type(exc).__name__}: {exc})")
    dashboard_threads = common.blas_threads()
    dash, cli = [], []
    for r in range(rounds):
        dash.append(dashboard_run(steps))
        # --no-augment: the Model page's dense default leaves the preset's distortions off
        # (mlp_lab.choices.DISTORT_BY_DEFAULT), so both train the very same way.
        cli.append(common.run_cli(["train", "--model", "dense", "--steps", steps, "--seed", 0, "--no-augment"]))
        common.log(f"dashboard: round {r + 1}/{rounds}: dashboard {dash[-1]['samples_per_second']:,.0f}/s "
                   f"(reported {dash[-1]['reported_samples_per_second'] or 0:,.0f}/s), "
                   f"CLI {cli[-1]['samples_per_second']:,.0f}/s")
    d_wall = common.median([d["samples_per_second"] for d in dash])
    d_reported = common.median([d["reported_samples_per_second"] for d in dash])
    c = common.median([x["samples_per_second"] for x in cli])
    model = dash[0]["model"]
    figures = [
        common.figure("dashboard_ratio", "Dashboard training throughput vs the CLI", d_wall, c,
                      unit="samples/s", ref_name="CLI", goal={"on": "ratio", "op": ">=", "value": 0.8},
                      note=f"{model}, {steps:,} steps, wall time of the run incl. validation"),
        common.figure("dashboard_reported_ratio", "  dashboard, its own figure (validation excluded)",
                      d_reported, c, unit="samples/s", ref_name="CLI"),
    ]
    return {
        "benchmark": "dashboard",
        "quick": quick,
        "api": api,
        "settings": {"preset": "dense", "model": model, "steps": steps, "rounds": rounds, "seed": 0},
        "dashboard_runs": dash,
        "cli_runs": [{k: x.get(k) for k in ("steps", "train_seconds", "samples_per_second", "test_accuracy",
                                            "blas_threads")}
                     for x in cli],
        "dashboard_blas_threads": dashboard_threads,
        "cli_blas_threads": cli[0].get("blas_threads"),
        "dashboard_samples_per_second": d_wall,
        "dashboard_reported_samples_per_second": d_reported,
        "cli_samples_per_second": c,
        "figures": figures,
    }


def human(result: dict) -> str:
    rows = []
    for i, (d, c) in enumerate(zip(result["dashboard_runs"], result["cli_runs"]), start=1):
        rows.append([i, f"{d['samples_per_second']:,.0f}", f"{d['reported_samples_per_second'] or 0:,.0f}",
                     d["polls"], f"{c['samples_per_second']:,.0f}"])
    s = result["settings"]
    return (f"Dashboard ({result['api']}, {result.get('dashboard_blas_threads')} BLAS thread(s)) vs CLI "
            f"({result.get('cli_blas_threads')} BLAS thread(s)): {s['model']}, {s['steps']:,} steps, dense preset\n\n"
            + common.table(["round", "dashboard samples/s (wall)", "dashboard (reported)", "polls",
                            "CLI samples/s"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


def main(argv=None) -> int:
    parser = common.arguments(__doc__)
    parser.add_argument("--steps", type=int, help="steps per run (default 2000, quick 150)")
    parser.add_argument("--rounds", type=int, help="runs of each (default 5, quick 1)")
    args = parser.parse_args(argv)
    common.emit(run(args.quick, args.steps, args.rounds), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
