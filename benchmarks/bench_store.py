"""Time to save and load one student's lab record in the store (mlp_lab/store.py).

    python benchmarks/bench_store.py [--runs 21] [--folder DIR]   (the package installed, or PYTHONPATH=.)

The record is the dense 784-256-128-10 network (float32, 235,146 weights) as the
``.npz`` bytes of ``mlp_core.persistence``, its settings, and a trainer state whose loss
history is full (20,000 points, the most a trainer keeps) with 50 validation points: the
largest record a default lab makes. "save" is ``SQLiteStore.save_lab`` (the model
validated, one write transaction committed to disk); "load" is ``load_lab`` plus
``LabRecord.load_model`` (the validating loader) -- what a reload costs. Each figure is
the median of ``--runs`` repetitions, after one warm-up. The folder defaults to a fresh
temporary one (on this machine's /tmp; pass --folder to measure the real data disk).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from mlp_core.persistence import model_to_bytes
from mlp_lab.choices import ModelChoice
from mlp_lab.store import LabRecord, SQLiteStore, lab_settings, new_student_id


def the_record() -> LabRecord:
    choice = ModelChoice(kind="dense", hidden=(256, 128))
    model = choice.build(seed=0)
    rng = np.random.default_rng(0)
    steps = list(range(1, 20_000))  # the history just short of being halved
    history = {"steps": steps, "losses": (2.3 * np.exp(-np.arange(len(steps)) / 3000)
                                          + 0.05 * rng.random(len(steps))).tolist(),
               "val_steps": list(range(100, 5_001, 100)), "val_accuracy": rng.random(50).tolist(),
               "stride": 1, "pending_sum": 0.0, "pending_count": 0}
    state = {"step": steps[-1], "samples_seen": steps[-1] * 128, "lr": 0.001, "train_seconds": 60.0,
             "last_loss": history["losses"][-1], "history": history}
    return LabRecord(model=model_to_bytes(model), settings=lab_settings(choice, 0.001, 2000),
                     trainer_state=state, test_accuracy=0.978, test_step=steps[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--folder", default=None)
    args = parser.parse_args()
    record = the_record()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(args.folder or tmp)
        sid = new_student_id()
        store.save_lab(sid, record)  # warm-up: makes the file and the tables
        store.load_lab(sid).load_model()
        saves, loads = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            store.save_lab(sid, record)
            t1 = time.perf_counter()
            store.load_lab(sid).load_model()
            t2 = time.perf_counter()
            saves.append(t1 - t0)
            loads.append(t2 - t1)
        size = store.usage(sid).bytes
        if args.folder:
            store.forget(sid)
    print(f"lab record of a dense 784-256-128-10 network, full 20,000-point loss history, "
          f"median of {args.runs} runs:")
    print(f"  model .npz bytes:   {len(record.model):,}")
    print(f"  record bytes:       {size:,} (model + settings + trainer state JSON)")
    print(f"  save (save_lab):    {statistics.median(saves) * 1000:.1f} ms "
          f"(min {min(saves) * 1000:.1f}, max {max(saves) * 1000:.1f})")
    print(f"  load (load_lab + load_model): {statistics.median(loads) * 1000:.1f} ms "
          f"(min {min(loads) * 1000:.1f}, max {max(loads) * 1000:.1f})")


if __name__ == "__main__":
    main()
