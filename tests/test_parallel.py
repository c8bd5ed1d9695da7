"""Training on two processes (TrainConfig(processes=2), mlp_core/parallel.py) gives the
numbers of one process, survives divergence and new runs, and never leaves its second
process behind."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mlp_core import DenseMLP, NotebookNet, TrainConfig, Trainer
from mlp_core.trainer import OneProcessStep

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that ended but was not yet reaped is a zombie: gone for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def trained(x, y, dtype, processes, steps=30, **settings):
    config = TrainConfig(optimizer="adam", lr=1e-3, batch_size=64, processes=processes, **settings)
    trainer = Trainer(DenseMLP(hidden=(32, 16), seed=3, dtype=dtype), x, y, config)
    try:
        trainer.run(steps=steps)
        trainer.run(steps=steps)  # a second run continues in step with the helper
        return {k: v.copy() for k, v in trainer.model.params.items()}, list(trainer.history.losses)
    finally:
        trainer.close()


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("shift", [0, 1])
def test_two_processes_train_like_one(mnist, dtype, rtol, shift):
    """Same weights and losses after two runs, up to the rounding of summing the batch's
    gradient in two halves. With shift the trainer gathers whole batches; without, each
    process gathers its half (for float32 models)."""
    (x_train, y_train), _ = mnist
    x, y = x_train[:3000], y_train[:3000]
    one_params, one_losses = trained(x, y, dtype, 1, shift=shift)
    two_params, two_losses = trained(x, y, dtype, 2, shift=shift)
    np.testing.assert_allclose(two_losses, one_losses, rtol=rtol)
    for name, value in one_params.items():
        scale = np.abs(value).max()
        np.testing.assert_allclose(two_params[name], value, rtol=rtol, atol=rtol * scale, err_msg=name)
    assert not np.array_equal(one_params["w1"], DenseMLP(hidden=(32, 16), seed=3, dtype=dtype).params["w1"])


def test_an_odd_batch_and_training_on_after_close_keep_the_numbers_of_one_process(mnist):
    """33 images a step: 16 in one process, 17 in the other. After close, the trainer goes
    on in one process with the same weights and Adam moments."""
    (x_train, y_train), _ = mnist
    x, y = x_train[:2000], y_train[:2000]
    runs = []
    for processes in (1, 2):
        trainer = Trainer(DenseMLP(hidden=(24,), seed=5, dtype=np.float64), x, y,
                          TrainConfig(optimizer="adam", lr=2e-3, batch_size=33, processes=processes))
        trainer.run(steps=20)
        trainer.close()
        trainer.run(steps=20)
        runs.append({k: v.copy() for k, v in trainer.model.params.items()})
    for name, value in runs[0].items():
        np.testing.assert_allclose(runs[1][name], value, rtol=1e-10, atol=1e-12, err_msg=name)


def test_a_diverging_run_on_two_processes_restores_sane_weights_and_goes_on(mnist):
    (x_train, y_train), _ = mnist
    trainer = Trainer(DenseMLP(hidden=(32,), seed=0), x_train[:2000], y_train[:2000],
                      TrainConfig(optimizer="sgd", lr=1e4, batch_size=32, processes=2))
    try:
        result = trainer.run(steps=200)
        assert result.status == "diverged"
        assert all(np.isfinite(p).all() for p in trainer.model.params.values())
        trainer.set_lr(1e-2)
        assert trainer.run(steps=50).status == "finished"  # the helper is still in step
        assert np.isfinite(trainer.last_loss)
    finally:
        trainer.close()


def test_close_ends_the_second_process_and_the_model_keeps_its_weights(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    trainer = Trainer(DenseMLP(hidden=(32,), seed=0), x_train[:4000], y_train[:4000],
                      TrainConfig(optimizer="adam", lr=3e-3, batch_size=64, processes=2))
    helper = trainer._training_step.helper
    trainer.run(steps=100)
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    trainer.close()
    assert helper.poll() is not None, "the helper ended"
    assert isinstance(trainer._training_step, OneProcessStep), "training goes on in this process"
    for name, value in trainer.model.params.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    accuracy = np.mean(trainer.model.predict(x_test[:1000] / np.float32(255)) == y_test[:1000])
    assert accuracy > 0.8
    trainer.close()  # twice is fine


def test_the_second_process_ends_when_the_trainers_process_dies():
    script = textwrap.dedent("""
        import os, sys
        from mlp_core import DenseMLP, TrainConfig, Trainer, load_mnist
        (x, y), _ = load_mnist()
        t = Trainer(DenseMLP(hidden=(16,)), x[:1000], y[:1000],
                    TrainConfig(optimizer="adam", batch_size=32, processes=2))
        t.run(steps=5)
        print(t._training_step.helper.pid, flush=True)
        os._exit(0)  # no clean-up at all
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=HERE, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    helper = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 15
    while pid_alive(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(helper), "the helper outlived its trainer's process"


def test_settings_two_processes_cannot_train_are_refused_clearly(mnist):
    (x_train, y_train), _ = mnist
    x, y = x_train[:500], y_train[:500]
    with pytest.raises(ValueError, match="dense models with relu and cross-entropy"):
        Trainer(NotebookNet(), x, y, TrainConfig(processes=2, batch_size=8))
    with pytest.raises(ValueError, match="dense models with relu and cross-entropy"):
        Trainer(DenseMLP(activation="tanh"), x, y, TrainConfig(processes=2, batch_size=8))
    with pytest.raises(ValueError, match="weight decay"):
        Trainer(DenseMLP(), x, y, TrainConfig(processes=2, batch_size=8, weight_decay=1e-4))
    with pytest.raises(ValueError, match="processes must be 1 or 2"):
        TrainConfig(processes=4)
