"""One training step on two processes (data parallel), so that all of a step's work uses
both cores, not only its matrix products.

Why processes: NumPy runs its element-wise operations (Adam's passes over every weight,
relu, softmax, the batch gather) on one core, about half of a step. A second Python
*thread* cannot take half of them: the two threads wait on each other for the
interpreter lock, and on this kind of machine each wait costs about what it frees (we
measured three designs). A second process has an interpreter of its own.

How: the weights, both halves' gradients, the optimizer's moments and the batch live in
shared memory. Each step

1. ``gradients``: each process computes its half of the batch's loss and gradient (this
   process the first half of the images, the helper the second; each gathers its own
   half, except shifted images, which the trainer gathers whole), each already divided
   by the whole batch's size, so that the two halves add up to the batch's mean;
2. ``update``: each process adds the two gradients over its half of the *weights* and
   applies the optimizer there; when both are done, the weights are whole again.

``TwoProcessStep`` is the trainer's step (``trainer.TrainingStep``), so the trainer looks
at the loss between the two (to keep known-good weights, or to stop a run that diverged)
exactly as it does with one process. The numbers are those of one process on the whole
batch up to float rounding (the batch's gradient is summed in two parts); tests hold the
two together.

The helper is ``python -m mlp_core.parallel``, started by ``TwoProcessStep`` and told
what to do through a few counters in the shared memory: while training, each side
spin-waits for the other (a step is ~1 ms; waking a sleeping process would cost more);
between runs the helper sleeps, and it exits when told to or when this process is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from .data import scale
from .networks import DenseMLP, ParamDict, build_model
from .optimizers import Optimizer, make_optimizer
from .trainer import BatchImages

# The control counters (int64) and values (float64) at the end of the shared memory.
GO, HELPER_GRADS, MAIN_UPDATE, HELPER_DONE, STOP, READY = range(6)
LR, T, HELPER_LOSS, APPLY = range(4)
START_TIMEOUT = 120.0  # seconds for the helper to import NumPy and attach (a busy CI machine)


def _layout(n_params: int, n_states: int, batch: int, dtype, rows_shape=(0, 784),
            rows_dtype=np.uint8) -> tuple[dict[str, tuple[int, tuple, object]], int]:
    """name -> (byte offset, shape, dtype) of every array in the shared memory, and its size."""
    arrays = [("params", (n_params,), dtype), ("grads_a", (n_params,), dtype), ("grads_b", (n_params,), dtype)]
    arrays += [(f"state{i}", (n_params,), dtype) for i in range(n_states)]
    arrays += [("x", (batch, 784), dtype), ("labels", (batch,), np.int64), ("idx", (batch,), np.int64),
               ("ctrl", (8,), np.int64), ("vals", (8,), np.float64), ("rows", rows_shape, rows_dtype)]
    layout, offset = {}, 0
    for name, shape, dt in arrays:
        offset = -(-offset // 64) * 64  # each array on its own cache line
        layout[name] = (offset, shape, dt)
        offset += int(np.prod(shape)) * np.dtype(dt).itemsize
    return layout, offset


def _arrays(shm: shared_memory.SharedMemory, layout) -> dict[str, np.ndarray]:
    return {name: np.ndarray(shape, dt, buffer=shm.buf, offset=offset)
            for name, (offset, shape, dt) in layout.items()}


def _spin_until(ctrl: np.ndarray, index: int, target: int, alive=None, what: str = "") -> None:
    """Wait until ``ctrl[index] >= target``: spinning first, then sleeping ever longer."""
    spins = 0
    while ctrl[index] < target:
        spins += 1
        if spins > 20_000:
            time.sleep(min(0.01, 1e-6 * (spins - 20_000)))
            if alive is not None and spins % 256 == 0 and not alive():
                raise RuntimeError(f"the other training process stopped ({what})")


def _gather(a: dict[str, np.ndarray], lo: int, hi: int) -> None:
    """Training images idx[lo:hi] into x[lo:hi], as floats in [0, 1]: the numbers the
    trainer's own gathering gives."""
    rows, out, idx = a["rows"], a["x"][lo:hi], a["idx"][lo:hi]
    if rows.dtype == np.uint8:  # only for a float32 model (see TwoProcessStep)
        scale(np.take(rows, idx, axis=0, mode="clip"), out=out)
    else:  # rows of the model's own dtype
        np.take(rows, idx, axis=0, out=out, mode="clip")


def _sum_and_update(optimizer: Optimizer, params: ParamDict, grads: ParamDict, second_half_grads: np.ndarray,
                    part: slice) -> None:
    """The batch's gradient on the weights ``part`` (each half's gradient is its share of
    the batch's mean already: their sum), written over the first half's ``grads``, which
    the next step overwrites anyway; then the optimizer's update of those weights."""
    first = grads.flat[part]
    np.add(first, second_half_grads[part], out=first)
    optimizer.update_part(params, grads, part)


def check_supported(model, optimizer: Optimizer, batch_size: int) -> None:
    """A clear ValueError unless two processes can train this model with this optimizer."""
    if not (isinstance(model, DenseMLP) and model.activation == "relu" and model.loss == "cross_entropy"):
        raise ValueError("two processes train dense models with relu and cross-entropy only "
                         f"(got {model.describe()}, loss {model.loss})")
    if optimizer.weight_decay:
        raise ValueError("two processes do not support weight decay")
    if batch_size < 2:
        raise ValueError("two processes need a batch of at least 2 images")


class TwoProcessStep:
    """The trainer's step (``trainer.TrainingStep``) split between this process and a
    helper process: binds ``model``'s weights and ``optimizer``'s state to shared memory
    and starts the helper. ``close()`` ends it (also done when garbage collected)."""

    def __init__(self, model: DenseMLP, optimizer: Optimizer, batch_size: int, rows: np.ndarray | None = None):
        """``rows``: the training images, (N, 784), uint8 or floats of the model's dtype.
        Given, they are copied into the shared memory once and each process gathers its
        own half of every batch (else the trainer's ``images`` gathers whole batches)."""
        check_supported(model, optimizer, batch_size)
        self.model, self.optimizer, self.n = model, optimizer, batch_size
        self.half = batch_size // 2  # this process: images 0:half; the helper: half:n
        shapes, dtype = model.param_shapes(), model.dtype
        if rows is not None and not (rows.dtype == dtype or (rows.dtype == np.uint8 and dtype == np.float32)):
            rows = None
        self.gathers = rows is not None
        rows_shape, rows_dtype = (rows.shape, rows.dtype) if self.gathers else ((0, 784), np.uint8)
        n_params = model.n_params
        self.split = n_params // 2  # this process updates weights 0:split; the helper the rest
        layout, size = _layout(n_params, len(optimizer.state_names), batch_size, dtype, rows_shape, rows_dtype)
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        self.a = a = _arrays(self.shm, layout)
        a["ctrl"][:] = 0
        if self.gathers:
            a["rows"][...] = rows
        a["params"][...] = model.params.flat
        model.keep_params_in(a["params"])
        self.grads = ParamDict(shapes, dtype, buffer=a["grads_a"])
        self.states = [a[f"state{i}"] for i in range(len(optimizer.state_names))]
        for buffer, name in zip(self.states, optimizer.state_names):
            state = getattr(optimizer, name)  # {} until the optimizer's first step
            buffer[...] = state.flat if isinstance(state, ParamDict) else 0
        optimizer.init_state(model.params, self.states)
        self.k = self.updates = 0  # steps started, and steps whose update is done
        spec = {"shm": self.shm.name, "model": model.config(), "optimizer": optimizer.config(),
                "batch_size": batch_size, "rows": [list(rows_shape), np.dtype(rows_dtype).str],
                "gathers": self.gathers,
                "parent": os.getpid()}
        env = dict(os.environ)  # the helper imports this very mlp_core, wherever it is
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in [env.get("PYTHONPATH")] if p])
        self.helper = subprocess.Popen([sys.executable, "-m", "mlp_core.parallel", json.dumps(spec)],
                                       stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while a["ctrl"][READY] == 0:
                if self.helper.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the second training process did not start")
                time.sleep(0.01)
        except BaseException:
            self.close()
            raise

    def _alive(self) -> bool:
        return self.helper.poll() is None

    def gradients(self, idx: np.ndarray, labels: np.ndarray, images: BatchImages) -> float:
        """Both halves' gradients for the batch of training images ``idx``; returns the
        batch's mean loss. The helper then waits for ``update`` or ``roll_back_to``."""
        a, n, h = self.a, self.n, self.half
        if self.gathers:
            a["idx"][:] = idx
        else:
            images(idx, out=a["x"])
        a["labels"][:] = labels
        self.optimizer.t += 1
        a["vals"][LR], a["vals"][T] = self.optimizer.lr, self.optimizer.t
        self.k += 1
        a["ctrl"][GO] = self.k
        if self.gathers:
            _gather(a, 0, h)
        loss_a = self.model.partial_loss_and_grads(a["x"][:h], a["labels"][:h], n, self.grads, checked=True)
        _spin_until(a["ctrl"], HELPER_GRADS, self.k, self._alive, "computing its gradient")
        return loss_a + float(a["vals"][HELPER_LOSS])

    def update(self) -> None:
        """The optimizer's update of every weight, each process updating its half."""
        self._finish_step(apply=True)

    def _finish_step(self, apply: bool) -> None:
        """Let both processes end the step, updating the weights if ``apply``. Does
        nothing when this step is finished already."""
        if self.updates == self.k:
            return
        a = self.a
        a["vals"][APPLY] = 1.0 if apply else 0.0
        a["ctrl"][MAIN_UPDATE] = self.k
        if apply:
            _sum_and_update(self.optimizer, self.model.params, self.grads, a["grads_b"], slice(0, self.split))
        _spin_until(a["ctrl"], HELPER_DONE, self.k, self._alive, "updating its weights")
        self.updates = self.k

    def roll_back_to(self, params: dict[str, np.ndarray]) -> None:
        """As ``trainer.OneProcessStep``: the helper sees the weights and the zeroed state
        in the shared memory."""
        self._finish_step(apply=False)
        self.model.set_params(params)
        self.optimizer.reset()
        for buffer in self.states:
            buffer[...] = 0
        self.optimizer.init_state(self.model.params, self.states)

    def close(self) -> None:
        """End the helper and free the shared memory; the model keeps its weights and the
        optimizer its state (copies of the same layout)."""
        if self.shm is None:
            return
        self.model.keep_params_in(self.model.params.flat.copy())
        self.optimizer.init_state(self.model.params, [buffer.copy() for buffer in self.states])
        self.grads = self.states = None
        self.a["ctrl"][STOP] = 1
        try:
            self.helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.helper.kill()
        self.a = None
        self.shm.close()
        self.shm.unlink()
        self.shm = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: nothing left to do)
            pass


def _helper(spec: dict) -> None:
    """The second process: half of every step's gradient and update, until told to stop."""
    from .blas import set_blas_threads  # noqa: PLC0415

    set_blas_threads(1)  # two processes, two cores
    shm = shared_memory.SharedMemory(name=spec["shm"])
    # Python 3.11 registers a segment it merely attaches to with its resource tracker,
    # which would unlink it when this process ends: the trainer's process owns it.
    resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
    try:
        model = build_model(spec["model"])
        opt_cfg = dict(spec["optimizer"])
        optimizer = make_optimizer(opt_cfg.pop("optimizer"), **opt_cfg)
        n = spec["batch_size"]
        h, n_params = n // 2, model.n_params
        split = n_params // 2
        rows_shape, rows_dtype = spec["rows"]
        layout, _ = _layout(n_params, len(optimizer.state_names), n, model.dtype,
                            tuple(rows_shape), np.dtype(rows_dtype))
        a = _arrays(shm, layout)
        model.keep_params_in(a["params"])
        optimizer.init_state(model.params, [a[f"state{i}"] for i in range(len(optimizer.state_names))])
        grads_a = ParamDict(model.param_shapes(), model.dtype, buffer=a["grads_a"])
        grads_b = ParamDict(model.param_shapes(), model.dtype, buffer=a["grads_b"])
        ctrl, vals, parent = a["ctrl"], a["vals"], spec["parent"]
        trainer_alive = lambda: os.getppid() == parent  # noqa: E731
        ctrl[READY] = 1
        done = 0
        while True:
            spins = 0
            while ctrl[GO] <= done and not ctrl[STOP]:  # wait for a step: spin, then sleep
                spins += 1
                if spins > 20_000:
                    time.sleep(0.002)
                    if spins % 256 == 0 and not trainer_alive():
                        return  # the trainer's process is gone
            if ctrl[STOP]:
                return
            done = int(ctrl[GO])
            optimizer.lr, optimizer.t = float(vals[LR]), int(vals[T])
            if spec["gathers"]:
                _gather(a, h, n)
            vals[HELPER_LOSS] = model.partial_loss_and_grads(a["x"][h:], a["labels"][h:], n, grads_b, checked=True)
            ctrl[HELPER_GRADS] = done
            _spin_until(ctrl, MAIN_UPDATE, done, trainer_alive, "the trainer")
            if vals[APPLY]:
                _sum_and_update(optimizer, model.params, grads_a, a["grads_b"], slice(split, n_params))
            ctrl[HELPER_DONE] = done
    finally:
        shm.close()


if __name__ == "__main__":
    _helper(json.loads(sys.argv[1]))
