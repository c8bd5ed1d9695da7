"""Shared fixtures: the bundled MNIST, loaded once per test session."""

import os
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests' students are saved in a store of their own, never in the user's data folder.
os.environ["MLP_LAB_DATA_DIR"] = tempfile.mkdtemp(prefix="mlp-lab-test-store-")


def pytest_addoption(parser):
    # Here, not in tests/browser/conftest.py: pytest reads options only from the conftest
    # files it loads before collecting, and `python -m pytest` starts from tests/.
    parser.addoption("--update-screenshots", action="store_true",
                     help="browser tests write the README's screenshots into docs/screenshots "
                          "(without it they go to a temporary folder)")


@pytest.fixture(scope="session")
def mnist():
    from mlp_core import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    for array in (x_train, y_train, x_test, y_test):
        array.flags.writeable = False  # a test that writes into the shared data is a bug
    return (x_train, y_train), (x_test, y_test)


def pytest_collection_modifyitems(config, items):
    # Tests that import TensorFlow into this process run last: once keras is imported,
    # Streamlit calls keras.backend.clear_session() (a full gc.collect, ~0.5 s) after every
    # script run, which slows every later AppTest run from ~0.04 s to ~0.6-0.9 s.
    items.sort(key=lambda item: item.get_closest_marker("tensorflow") is not None)  # stable
