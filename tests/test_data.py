"""The bundled MNIST is the real one, in Keras' layout, and the helpers do what they say."""

import hashlib

import numpy as np
import pytest

from mlp_core import data


def test_bundled_mnist_is_the_canonical_dataset(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    # Layout identical to tf.keras.datasets.mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    # The canonical figures from shared/data/README.md: same bytes as the verified copy
    digests = {
        "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    }
    for name, array in zip(digests, (x_train, y_train, x_test, y_test)):
        assert hashlib.sha256(array.tobytes()).hexdigest() == digests[name], name
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.tensorflow
def test_keras_source_without_network_fails_clearly(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    # Keras downloads to ~/.keras; point HOME and KERAS_HOME at an empty place so no cached
    # copy is found and the (offline) download is really attempted.
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")
    def refuse(*args, **kwargs):  # the machine has no internet: make that certain and fast
        raise OSError("network unreachable")
    monkeypatch.setattr(tf.keras.utils, "get_file", refuse)
    monkeypatch.setattr("keras.src.datasets.mnist.get_file", refuse, raising=False)
    with pytest.raises(RuntimeError, match="bundled copy works offline"):
        data.load_mnist(source="keras")


def test_unknown_source_and_missing_file():
    with pytest.raises(ValueError, match="bundled"):
        data.load_mnist(source="internet")
    with pytest.raises(FileNotFoundError, match="MNIST file not found"):
        data.load_mnist(path="/nonexistent/mnist.npz")


def test_scale_into_an_array_gives_the_same_numbers():
    images = np.arange(256, dtype=np.uint8).reshape(4, 64)
    out = np.full((4, 64), -1, np.float32)
    assert data.scale(images, out=out) is out
    np.testing.assert_array_equal(out, data.scale(images))  # bit for bit
    with pytest.raises(ValueError, match="float32"):
        data.scale(images, out=np.empty((4, 64), np.float64))


def test_scale_flatten_one_hot():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    scaled = data.scale(images)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[[0, 1], [0.2, 0.4]]], rtol=1e-6)
    assert data.flatten(scaled).shape == (1, 4)
    assert np.shares_memory(data.flatten(scaled), scaled)  # a view, not a copy
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="0..9"):
        data.one_hot(np.array([10]))


def test_validation_split_is_seeded_and_disjoint():
    x = np.arange(100)
    y = np.arange(100) % 10
    (xt, yt), (xv, yv) = data.validation_split(x, y, 20, seed=1)
    (xt2, _), (xv2, _) = data.validation_split(x, y, 20, seed=1)
    (_, _), (xv3, _) = data.validation_split(x, y, 20, seed=2)
    assert len(xv) == 20 and len(xt) == 80
    assert set(xt) | set(xv) == set(x) and not set(xt) & set(xv)  # a partition
    np.testing.assert_array_equal(xv, xv2)  # same seed, same split
    assert not np.array_equal(xv, xv3)  # another seed, another split
    np.testing.assert_array_equal(yv, xv % 10)  # labels travel with their images


def test_minibatches_cover_each_epoch_once_and_are_seeded():
    batches = data.iterate_minibatches(10, 3, seed=5)
    epoch = np.concatenate([next(batches) for _ in range(3)])  # 10 // 3 = 3 batches an epoch
    assert len(set(epoch)) == 9  # no repeats within an epoch (one sample dropped)
    again = data.iterate_minibatches(10, 3, seed=5)
    np.testing.assert_array_equal(epoch, np.concatenate([next(again) for _ in range(3)]))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.iterate_minibatches(10, 0))
