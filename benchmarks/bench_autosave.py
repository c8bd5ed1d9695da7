"""What saving a student's lab while it trains costs: the dashboard's 2,000-step run of the
default Dense MLP, with and without the keeper's saver (mlp_lab/keeper.py), side by side.

    python benchmarks/bench_autosave.py [--rounds 5] [--steps 2000]   (the package installed, or PYTHONPATH=.)

Each round trains the same fresh model (seed 0) three ways, in turn, in this process with one
BLAS thread (as the dashboard does): "no store" (a lab of its own, nothing saved), "saved every
5 s" (the keeper with a real SQLite store in a temporary folder and its saver thread at the
default ``MLP_LAB_SAVE_SECONDS``: a save at the start, one every 5 s, one at the end), and
"saved every 1 s" (five times as often, to make the cost visible). Printed: the median
training speed of each (images per second) and its ratio to "no store"; what one save
costs (building the record -- weights, history, settings as .npz and JSON -- and writing it
in one transaction), from the keeper's own counters; and what it costs the pages: while
each run trains, this thread builds the Train page's loss chart over and over (Plotly, in
Python, as a page does) and the median and 95th percentile of that time are compared.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from mlp_core.blas import set_blas_threads
from mlp_lab import figures
from mlp_lab.choices import ModelChoice
from mlp_lab.keeper import LabKeeper
from mlp_lab.lab import LabSession
from mlp_lab.store import SQLiteStore, new_student_id


def train(lab: LabSession, steps: int, page_times: list[float]) -> float:
    """Images per second of one run of ``steps`` steps from fresh weights (seed 0); meanwhile
    the seconds each loss chart took to build are added to ``page_times``."""
    choice = ModelChoice.preset("dense")
    lab.reset(choice, seed=0, lr=choice.usual_lr())
    started = time.perf_counter()
    message = lab.start(steps)
    assert message is None, message
    while lab.running:
        history = lab.snapshot(include_params=False).history
        t0 = time.perf_counter()
        figures.loss_figure(history.steps, history.losses, x_max=steps)
        page_times.append(time.perf_counter() - t0)
        time.sleep(0.05)  # a page now and then, not a busy loop fighting the trainer
    seconds = time.perf_counter() - started
    assert lab.trainer.step == steps, f"the run ended early: {lab.status().reason}"
    return steps * choice.batch_size / seconds


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    set_blas_threads(1)
    speeds = {"no store": [], "saved every 5 s": [], "saved every 1 s": []}
    pages = {name: [] for name in speeds}
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(folder)
        keepers = {"saved every 5 s": LabKeeper(store, save_seconds=5.0),
                   "saved every 1 s": LabKeeper(store, save_seconds=1.0)}
        labs = {"no store": LabSession()}
        for name, keeper in keepers.items():
            labs[name] = keeper.attach(new_student_id()).lab
        figures.warm_up()
        train(labs["no store"], 200, [])  # warm-up: caches, the first batches
        for _ in range(args.rounds):
            for name, lab in labs.items():
                speeds[name].append(train(lab, args.steps, pages[name]))
        time.sleep(1.5)  # the last run's end is saved
        stats = {name: keeper.stats for name, keeper in keepers.items()}
        size = store.usage().bytes / len(keepers)
        for keeper in keepers.values():
            keeper.close_all()
        labs["no store"].close()

    base = statistics.median(speeds["no store"])
    print(f"Dense MLP 784-256-128-10, {args.steps:,}-step runs, median of {args.rounds} rounds "
          "(interleaved), 1 BLAS thread:")
    for name, values in speeds.items():
        median = statistics.median(values)
        print(f"  {name:16s} {median:9,.0f} images/s   ratio to no store {median / base:.3f}   "
              f"(min {min(values):,.0f}, max {max(values):,.0f})")
    base_page = statistics.median(pages["no store"])
    for name, times in pages.items():
        print(f"  page work while {name:16s} median {statistics.median(times) * 1000:6.1f} ms "
              f"(ratio {statistics.median(times) / base_page:.3f}), p95 {percentile(times, 95) * 1000:6.1f} ms, "
              f"n {len(times)}")
    for name, stat in stats.items():
        print(f"  {name}: {stat.saves} saves in {args.rounds} runs, {stat.seconds / stat.saves * 1000:.1f} ms "
              f"per save (max {stat.max_seconds * 1000:.1f} ms), {stat.failures} failed")
    print(f"  one student's record in the store: {size / 2**20:.2f} MB "
          f"(model file {stats['saved every 5 s'].bytes / 2**20:.2f} MB)")


if __name__ == "__main__":
    main()
