"""The Trainer: iterative, resumable, deterministic, bounded, safe against divergence and
safe to run in a background thread while another thread reads it."""

import json
import math
import threading
import time

import numpy as np
import pytest

from mlp_core import DenseMLP, History, NotebookNet, TrainConfig, Trainer, scale


@pytest.fixture(scope="module")
def small(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    return scale(x_train[:2000]), y_train[:2000], scale(x_test[:500]), y_test[:500]


def dense_trainer(small, seed=0, **config):
    x, y, xv, yv = small
    settings = dict(optimizer="adam", lr=1e-3, batch_size=32, seed=seed, eval_every=50)
    settings.update(config)
    return Trainer(DenseMLP(hidden=(32, 16), seed=seed), x, y, TrainConfig(**settings), xv, yv)


def params_of(trainer):
    return {k: v.copy() for k, v in trainer.model.params.items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_same_seed_same_weights_and_losses(small):
    a, b = dense_trainer(small, seed=3), dense_trainer(small, seed=3)
    a.run(steps=60)
    b.run(steps=60)
    assert_same_params(params_of(a), params_of(b))  # bit-for-bit: the run is deterministic
    assert a.history.losses == b.history.losses
    c = dense_trainer(small, seed=4)
    c.run(steps=60)
    assert not np.array_equal(c.model.params["w1"], a.model.params["w1"])


def test_running_again_continues_like_one_long_run(small):
    # The notebook's "run the cell again": two runs of 40 steps are one run of 80.
    split, whole = dense_trainer(small), dense_trainer(small)
    split.run(steps=40)
    split.run(steps=40)
    whole.run(steps=80)
    assert split.step == whole.step == 80
    assert_same_params(params_of(split), params_of(whole))
    assert split.history.steps == list(range(1, 81))  # the curve continues, not restarts


def test_training_lowers_the_loss_and_records_validation(small):
    trainer = dense_trainer(small)
    result = trainer.run(steps=200)
    losses = trainer.history.losses
    assert result.status == "finished" and result.steps == 200
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert trainer.history.val_steps == [50, 100, 150, 200]
    assert trainer.history.val_accuracy[-1] > 0.7  # 200 Adam steps on 2,000 images
    assert trainer.epochs == pytest.approx(200 * 32 / 2000)


def test_notebook_batch_size_one_runs_5000_steps_without_recursion(small):
    x, y, _, _ = small
    trainer = Trainer(NotebookNet(), x, y)  # the notebook's defaults: SGD, lr 0.001, batch 1
    assert trainer.config.batch_size == 1 and trainer.optimizer.lr == pytest.approx(0.001)
    result = trainer.run(steps=5000)  # the recursive original overflowed Python's stack at ~1,000
    assert result.steps == 5000 and trainer.samples_seen == 5000


def test_time_budget_ends_the_run(small):
    trainer = dense_trainer(small)
    result = trainer.run(time_budget=0.5)
    assert result.status == "time_up"
    assert 0.5 <= result.seconds < 5
    assert result.steps > 0 and trainer.step == result.steps


def test_cosine_schedule_decays_to_zero_and_set_lr_applies(small):
    trainer = dense_trainer(small, schedule="cosine", lr=0.01)
    seen = []
    trainer.run(steps=100, on_progress=lambda t, f: seen.append(t.optimizer.lr), progress_interval=0)
    assert seen[0] == pytest.approx(0.01)  # full rate at the start
    assert trainer.optimizer.lr < 0.01 * 0.001  # ~0 at the end of the run
    assert all(a >= b for a, b in zip(seen, seen[1:]))  # never increases
    trainer.set_lr(0.002)
    constant = dense_trainer(small, lr=0.01)
    constant.set_lr(0.002)
    constant.run(steps=1)
    assert constant.optimizer.lr == 0.002  # the next step uses the new rate
    with pytest.raises(ValueError):
        trainer.set_lr(float("nan"))


def test_divergence_stops_with_reason_and_restores_finite_weights(small):
    trainer = dense_trainer(small, optimizer="sgd", lr=1e6, checkpoint_every=10)
    before = params_of(trainer)
    result = trainer.run(steps=500)
    assert result.status == "diverged"
    assert "learning rate" in result.reason and "restored" in result.reason
    snapshot = trainer.snapshot()
    assert all(np.isfinite(p).all() for p in snapshot.params.values())
    assert all(math.isfinite(v) for v in snapshot.history.losses)  # no NaN reaches a chart
    assert trainer.step < 500
    if trainer.step == 0:  # it blew up within the first checkpoint: the initial weights
        assert_same_params(snapshot.params, before)
    # Training can go on from the restored weights with a sane learning rate.
    trainer.set_lr(1e-3)
    assert trainer.run(steps=20).status == "finished"


def test_a_finite_but_exploding_loss_also_stops_the_run_and_restores_sane_weights(small):
    # tanh + cross-entropy with SGD at lr 1000: the loss climbs to ~10^4 and stays finite,
    # so the non-finite check alone would let the run go on to its end.
    x, y, xv, yv = small
    config = TrainConfig(optimizer="sgd", lr=1e3, batch_size=32, checkpoint_every=10)
    model = DenseMLP(hidden=(32,), activation="tanh", seed=0)
    trainer = Trainer(model, x, y, config)
    before = params_of(trainer)
    result = trainer.run(steps=300)
    assert result.status == "diverged" and trainer.status == "diverged"
    assert "the loss grew to" in result.reason and "smaller" in result.reason
    assert result.steps < 300
    assert trainer.step == 0  # the loss was huge from step 1: the only sane weights are the first
    assert_same_params(params_of(trainer), before)
    assert trainer.history.losses == []
    # Without the check (patience longer than the run) the same run goes on to its end.
    patient = Trainer(DenseMLP(hidden=(32,), activation="tanh", seed=0), x, y,
                      TrainConfig(optimizer="sgd", lr=1e3, batch_size=32, blowup_patience=10**6))
    assert patient.run(steps=300).status == "finished"
    assert min(patient.history.losses[5:]) > Trainer.BLOWUP_FLOOR


def test_one_huge_batch_does_not_stop_a_run(small):
    # Patience counts steps in a row: a single spike is not a blow-up.
    trainer = dense_trainer(small, blowup_patience=3)
    original = trainer.model.loss_and_grads
    calls = []

    def spiking(x, y, checked=False):
        loss, grads = original(x, y, checked=checked)
        calls.append(loss)
        return (1e6 if len(calls) in (5, 6) else loss), grads  # two huge losses, then sane

    trainer.model.loss_and_grads = spiking
    assert trainer.run(steps=40).status == "finished"
    calls.clear()  # the same two spikes against a patience of two steps do stop it
    trainer = dense_trainer(small, blowup_patience=2)
    original = trainer.model.loss_and_grads
    trainer.model.loss_and_grads = spiking
    assert trainer.run(steps=40).status == "diverged"


def test_stop_from_another_thread(small):
    trainer = dense_trainer(small)
    thread = threading.Thread(target=trainer.run, kwargs={"steps": 10**9}, daemon=True)
    thread.start()
    while trainer.step < 5:
        time.sleep(0.01)
    trainer.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert trainer.snapshot().status == "stopped"


def test_snapshots_during_a_background_run_are_consistent(small):
    """Each snapshot taken while another thread trains must be exactly the weights after
    `snapshot.step` steps: replaying a fresh trainer for that many steps gives them bit for bit."""
    trainer = dense_trainer(small, seed=7)
    thread = threading.Thread(target=trainer.run, kwargs={"steps": 400}, daemon=True)
    thread.start()
    snapshots = []
    while thread.is_alive():
        snap = trainer.snapshot()
        snapshots.append(snap)
        assert len(snap.history.steps) == snap.step  # history and weights agree
        time.sleep(0.01)
    thread.join()
    mid_run = [s for s in snapshots if 0 < s.step < 400]
    assert len(mid_run) >= 2, "the run ended before snapshots could be taken mid-run"
    for snap in (mid_run[0], mid_run[len(mid_run) // 2]):
        replay = dense_trainer(small, seed=7)
        replay.run(steps=snap.step)
        assert_same_params(snap.params, params_of(replay))


def test_history_is_bounded_and_keeps_the_mean():
    history = History(max_points=10)
    for step in range(1, 1001):
        history.add_loss(step, float(step))
    assert len(history.losses) < 10
    assert history.stride > 1
    assert history.steps == sorted(history.steps) and history.steps[-1] <= 1000
    # Averaging pairs keeps the mean of the points covered.
    covered = history.steps[-1]
    assert np.mean(history.losses) == pytest.approx((covered + 1) / 2, rel=0.05)


def test_bad_settings_are_refused_clearly(small):
    x, y, _, _ = small
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="images but"):
        Trainer(DenseMLP(), x, y[:10])
    with pytest.raises(ValueError, match=r"x_train must have shape \(N, 784\) or \(N, 28, 28\)"):
        Trainer(DenseMLP(), np.zeros((10, 5), np.float32), y[:10])
    with pytest.raises(ValueError, match="give steps"):
        Trainer(DenseMLP(), x, y).run()


def test_uint8_images_train_exactly_like_scaled_floats(mnist):
    """Given bytes, the trainer scales a batch at a time (less memory, faster gathers);
    the result must be bit-for-bit that of training on pre-scaled floats."""
    (x_train, y_train), _ = mnist
    x, y = x_train[:1000], y_train[:1000]
    as_bytes = Trainer(DenseMLP(hidden=(16,)), x, y, TrainConfig(optimizer="adam", batch_size=16))
    as_floats = Trainer(DenseMLP(hidden=(16,)), scale(x), y, TrainConfig(optimizer="adam", batch_size=16))
    as_bytes.run(steps=40)
    as_floats.run(steps=40)
    assert as_bytes.x_train.dtype == np.uint8  # no float copy of the training set was made
    assert_same_params(params_of(as_bytes), params_of(as_floats))


def test_shift_moves_each_training_image_by_at_most_that_many_pixels(mnist):
    (x_train, y_train), _ = mnist
    x, y = x_train[:600], y_train[:600]
    trainer = Trainer(DenseMLP(hidden=(8,)), x, y, TrainConfig(batch_size=64, shift=2))
    idx = np.arange(64)
    shifted = trainer._images(idx).reshape(64, 28, 28)
    moves = set()
    for image, original in zip(shifted, scale(x[idx])):
        padded = np.pad(original, 2)  # MNIST digits sit inside a 20x20 box: no ink is lost
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(padded[2 - dy:30 - dy, 2 - dx:30 - dx], image)]
        assert found, "every image is its original, moved"
        moves.add(found[0])
    assert len(moves) > 10  # a random move per image, not one for the whole batch
    # The same seed gives the same moves; shift 0 gives the images untouched.
    again = Trainer(DenseMLP(hidden=(8,)), x, y, TrainConfig(batch_size=64, shift=2))
    np.testing.assert_array_equal(again._images(idx).reshape(64, 28, 28), shifted)
    plain = Trainer(DenseMLP(hidden=(8,)), x, y, TrainConfig(batch_size=64))
    np.testing.assert_array_equal(plain._images(idx).reshape(64, 28, 28), scale(x[idx]))
    with pytest.raises(ValueError, match="shift"):
        TrainConfig(shift=9)


def test_a_dropped_trainer_is_freed_at_once(small):
    """No reference cycle keeps a trainer (its weights, its checkpoint) alive until Python's
    cycle collector happens to run: a classroom server drops one per closed session."""
    import gc
    import weakref

    trainer = dense_trainer(small)
    trainer.run(steps=3)
    trainer.close()
    gc.disable()
    try:
        dropped = weakref.ref(trainer)
        del trainer
        assert dropped() is None
    finally:
        gc.enable()


# --- saving a trainer's place and coming back to it (Trainer.state / restore_state) -------
def _restored_copy(trainer, small, **config):
    """A new trainer with ``trainer``'s weights and state, as after a server restart."""
    json_round_trip = json.loads(json.dumps(trainer.state().to_dict()))
    other = dense_trainer(small, **config)
    other.model.set_params(params_of(trainer))
    other.restore_state(json_round_trip)
    return other


@pytest.mark.parametrize("shift", [0, 1])
def test_a_restored_sgd_trainer_trains_on_to_the_same_weights(small, shift):
    # SGD keeps no state, so everything that decides the next steps is restored: the step,
    # the batch order, the random shifts; the result is bit-for-bit one long run.
    kw = dict(optimizer="sgd", lr=0.05, shift=shift)
    whole, first = dense_trainer(small, **kw), dense_trainer(small, **kw)
    whole.run(steps=130)
    first.run(steps=70)
    first.set_lr(0.05)
    restored = _restored_copy(first, small, **kw)
    assert restored.step == 70 and restored.samples_seen == first.samples_seen == 70 * 32
    assert restored.history.steps == first.history.steps and restored.history.losses == first.history.losses
    assert restored.history.val_accuracy == first.history.val_accuracy != []
    assert restored.last_loss == first.last_loss and restored.base_lr == 0.05
    restored.run(steps=60)
    assert restored.step == 130
    assert_same_params(params_of(restored), params_of(whole))
    assert restored.history.losses == whole.history.losses
    assert restored.history.val_steps == whole.history.val_steps


def test_a_restored_adam_trainer_continues_with_fresh_moments(small):
    # Adam's moments are not saved (documented): the restored trainer takes other steps
    # than one that never stopped, but keeps the step count and learns on.
    whole, first = dense_trainer(small), dense_trainer(small)
    whole.run(steps=120)
    first.run(steps=60)
    restored = _restored_copy(first, small)
    assert restored.optimizer.t == 0
    restored.run(steps=60)
    assert restored.step == 120 and restored.history.steps == list(range(1, 121))
    assert not np.array_equal(restored.model.params["w1"], whole.model.params["w1"])
    assert restored.history.losses[-1] < restored.history.losses[0]


def test_restoring_a_bad_state_is_refused_with_what_was_expected(small):
    trainer = dense_trainer(small)
    trainer.run(steps=10)
    good = trainer.state().to_dict()
    cases = [
        ({**good, "step": -1}, "step must be a whole number >= 0, got -1"),
        ({**good, "step": 2.5}, "step must be a whole number"),
        ({**good, "lr": 0}, "lr must be a positive number, got 0"),
        ({**good, "extra": 1}, "needs the keys"),
        ({"step": 1}, "needs the keys"),
        ({**good, "history": {**good["history"], "losses": [1.0]}}, "as many steps as values"),
        ({**good, "history": {**good["history"], "steps": list(range(10, 0, -1))}}, "must increase"),
        ({**good, "step": 5}, "up to the trainer's step 5"),
        ({**good, "history": {**good["history"], "losses": [float("nan")] * 10}}, "finite numbers"),
        ({**good, "history": {**good["history"], "stride": 3}}, "power of two"),
        ("not a dict", "must be a dict"),
    ]
    other = dense_trainer(small)
    for state, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            other.restore_state(state)
        assert other.step == 0 and other.history.steps == []  # nothing changed
    other.restore_state(good)
    assert other.step == 10


def test_a_huge_step_count_is_restored_without_replaying_every_batch(small):
    trainer = dense_trainer(small)
    started = time.perf_counter()
    trainer.restore_state({"step": 10**12, "samples_seen": 10**12, "lr": 0.001})
    assert time.perf_counter() - started < 1.0
    trainer.run(steps=3)
    assert trainer.step == 10**12 + 3


def test_a_thinned_state_is_bounded_and_still_restores(small):
    trainer = dense_trainer(small, eval_every=1000)
    trainer.run(steps=300)
    thin = trainer.state().thinned(50)
    assert len(thin.history["steps"]) < 50 and thin.history["stride"] == 8
    assert thin.history["steps"][-1] <= 300
    np.testing.assert_allclose(np.mean(thin.history["losses"]), np.mean(trainer.history.losses[:296]), rtol=1e-9)
    other = dense_trainer(small, eval_every=1000)
    other.restore_state(thin)
    assert other.history.stride == 8
    other.run(steps=16)
    assert other.history.steps[-1] == 316
