"""threads=2: a helper thread takes half of a training step's large products and of the
optimizer's update. The halves must add up to exactly the one-thread step, errors must
reach the caller, and no thread may outlive its run."""

import threading

import numpy as np
import pytest

from mlp_core import DenseMLP, TrainConfig, Trainer, make_optimizer, scale
from mlp_core.parallel import HelperThread


def helper_threads():
    return [t for t in threading.enumerate() if t.name.endswith("-helper")]


def test_both_halves_run_and_errors_reach_the_caller():
    seen = []
    with HelperThread(name="test-helper") as helper:
        helper.both(lambda: seen.append(("mine", threading.current_thread().name)),
                    lambda: seen.append(("theirs", threading.current_thread().name)))
        assert sorted(seen) == [("mine", threading.current_thread().name), ("theirs", "test-helper")]

        def fail():
            raise ZeroDivisionError("in the helper")

        with pytest.raises(ZeroDivisionError, match="in the helper"):
            helper.both(lambda: None, fail)
        helper.both(lambda: None, lambda: seen.append("still serving"))  # a failure does not kill it
        assert seen[-1] == "still serving"
        with np.errstate(over="raise"):  # NumPy's error settings travel with the job
            with pytest.raises(FloatingPointError):
                helper.both(lambda: None, lambda: np.float32(1e38) * np.float32(10))
    assert not helper._thread.is_alive()


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("hidden,n", [((128, 64), 128), ((32,), 57), ((64, 32, 16), 96)])
def test_split_dense_step_equals_the_one_thread_step(mnist, hidden, n, dtype, rtol):
    (x_train, y_train), _ = mnist
    x, labels = x_train[:n].reshape(n, 784).astype(dtype) / 255, y_train[:n]
    model = DenseMLP(hidden=hidden, seed=3, dtype=dtype)
    one_loss, one = model.loss_and_grads(x, labels)
    one = {k: v.copy() for k, v in one.items()}
    with HelperThread() as helper:
        two_loss, two = model.loss_and_grads(x, labels, helper=helper)
    assert two_loss == pytest.approx(one_loss, rel=rtol)
    for name in model.params:
        scale_ = np.abs(one[name]).max()
        assert scale_ > 0
        np.testing.assert_allclose(two[name], one[name], rtol=rtol, atol=rtol * scale_, err_msg=name)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_split_update_is_bit_for_bit_the_one_thread_update(name):
    rng = np.random.default_rng(0)
    a, b = DenseMLP(hidden=(64, 32), seed=1), DenseMLP(hidden=(64, 32), seed=1)
    one, two = make_optimizer(name, 1e-2), make_optimizer(name, 1e-2)
    grads = DenseMLP(hidden=(64, 32), seed=2).params  # any ParamDict of the right layout
    with HelperThread() as helper:
        for _ in range(130):  # past Adam's subnormal flush at step 64 and 128
            grads.flat[...] = rng.standard_normal(grads.flat.size).astype(np.float32)
            one.step(a.params, grads)
            two.step(b.params, grads, helper=helper)
    np.testing.assert_array_equal(a.params.flat, b.params.flat)


def test_a_two_thread_run_trains_like_a_one_thread_run_and_leaves_no_thread(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x, y = x_train[:6000], y_train[:6000]
    results = {}
    for threads in (1, 2, 2):
        model = DenseMLP(hidden=(64, 32), seed=0)
        trainer = Trainer(model, x, y, TrainConfig(optimizer="adam", lr=2e-3, batch_size=64,
                                                    threads=threads))
        assert trainer.run(steps=300).status == "finished"
        assert not helper_threads()  # the helper lived for the run only
        accuracy = float(np.mean(model.predict(scale(x_test[:2000])) == y_test[:2000]))
        results.setdefault(threads, []).append((trainer.history.losses, accuracy))
    (losses_a, acc_a), (losses_b, acc_b) = results[2]
    assert losses_a == losses_b  # deterministic with two threads too
    one_losses, one_acc = results[1][0]
    # The split products round differently in the last bits, so the runs drift apart a
    # little; they learn the same.
    np.testing.assert_allclose(losses_a[:20], one_losses[:20], rtol=1e-4)
    assert acc_a > 0.85 and abs(acc_a - one_acc) < 0.02, (acc_a, one_acc)


def test_threads_must_be_one_or_two():
    with pytest.raises(ValueError, match="threads"):
        TrainConfig(threads=3)
