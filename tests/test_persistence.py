"""Tests for mlp_core.persistence: round trips, atomic writes, and refusing bad files.

Every kind of bad file must give a ValueError whose message starts with
"This file is not a valid MLP Lab model: " and says what is wrong, and loading must never
execute anything stored in the file.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlp_core import persistence
from mlp_core.networks import DenseMLP, NotebookNet, build_model
from mlp_core.persistence import (ERROR_PREFIX, load_model, model_from_bytes, model_to_bytes,
                                  save_model)

RNG = np.random.default_rng(1234)
X = RNG.random((16, 28, 28), dtype=np.float32)  # a batch of fake images in [0, 1]


def _scrambled(model):
    """Give the model non-initial weights (so a round trip cannot pass by re-initialising)."""
    rng = np.random.default_rng(99)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.05
    return model


def _notebook():
    return _scrambled(NotebookNet(loss="mse", init="notebook", seed=3))


def _dense(**kwargs):
    kwargs.setdefault("hidden", (32, 16))
    return _scrambled(DenseMLP(seed=5, **kwargs))


def _meta_array(meta) -> np.ndarray:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _valid_meta(model) -> dict:
    return {"format": "mlp-lab-model", "version": 1, "model": model.config(),
            "training": {}, "extra": {}, "param_shapes": {k: list(v) for k, v in model.param_shapes().items()}}


def _write(path: Path, arrays: dict, allow_pickle: bool = False) -> Path:
    np.savez(path, allow_pickle=allow_pickle, **arrays)
    return path


def _assert_refused(source, *fragments: str) -> str:
    with pytest.raises(ValueError) as info:
        load_model(source)
    message = str(info.value)
    assert message.startswith(ERROR_PREFIX), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("make", [
    _notebook,
    lambda: _scrambled(NotebookNet(loss="cross_entropy", init="he", seed=1, dtype=np.float64)),
    _dense,
    lambda: _dense(hidden=(20,), activation="tanh", loss="mse", init="xavier", dtype=np.float64),
], ids=["notebook", "notebook-ce-f64", "dense", "dense-tanh-f64"])
def test_round_trip_is_exact(tmp_path, make):
    model = make()
    path = save_model(model, tmp_path / "model.npz", training={"steps": 7, "lr": np.float32(0.5)},
                      extra={"note": "héllo"})
    assert path == tmp_path / "model.npz"
    loaded, meta = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    assert loaded.param_names == model.param_names
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype
        assert np.array_equal(loaded.params[name], value), name  # bit for bit
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert meta["format"] == "mlp-lab-model" and meta["version"] == 1
    assert meta["model"] == model.config()
    assert meta["training"] == {"steps": 7, "lr": 0.5}
    assert meta["extra"] == {"note": "héllo"}
    assert meta["param_shapes"] == {k: list(v) for k, v in model.param_shapes().items()}


def test_meta_is_not_an_object_array(tmp_path):
    path = save_model(_dense(), tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:  # would fail on an object array
        meta = npz["__meta__"]
        assert meta.dtype == np.uint8 and meta.ndim == 1
        assert sorted(npz.files) == ["__meta__", "b1", "b2", "b3", "w1", "w2", "w3"]


def test_bytes_and_file_objects(tmp_path):
    model = _notebook()
    data = model_to_bytes(model, training={"a": 1})
    assert data.startswith(b"PK")
    for source in (data, io.BytesIO(data)):
        loaded, meta = load_model(source)
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert meta["training"] == {"a": 1}
    loaded, _ = model_from_bytes(data)
    assert loaded.config() == model.config()
    # the same bytes as a file on disk
    (tmp_path / "m.npz").write_bytes(data)
    loaded, _ = load_model(str(tmp_path / "m.npz"))
    assert np.array_equal(loaded.params["w1"], model.params["w1"])


def test_loaded_model_keeps_training_and_copies(tmp_path):
    path = save_model(_dense(), tmp_path / "m.npz")
    loaded, _ = load_model(path)
    clone = loaded.copy()
    assert np.array_equal(clone.predict_proba(X), loaded.predict_proba(X))


# ----------------------------------------------------------------------------- atomic writes
def test_save_leaves_no_temporary_file(tmp_path):
    save_model(_dense(), tmp_path / "m.npz")
    save_model(_notebook(), tmp_path / "m.npz")  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert load_model(tmp_path / "m.npz")[0].kind == "notebook"
    mode = (tmp_path / "m.npz").stat().st_mode & 0o777
    assert mode & 0o600 == 0o600


def test_failed_save_mismatched_param_keeps_previous_file(tmp_path):
    path = save_model(_notebook(), tmp_path / "m.npz")
    before = path.read_bytes()
    broken = _dense()
    with pytest.raises(ValueError, match="w1"):  # ParamDict refuses a wrong shape itself...
        broken.params["w1"] = np.zeros((3, 3), np.float32)
    dict.__setitem__(broken.params, "w1", np.zeros((3, 3), np.float32))  # ...so force one in
    with pytest.raises(ValueError, match="w1"):
        save_model(broken, path)
    broken = _dense()
    del broken.params["b2"]
    with pytest.raises(ValueError, match="b2"):
        save_model(broken, path)
    nan = _dense()
    nan.params["w2"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_model(nan, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_failed_write_cleans_up_and_keeps_previous_file(tmp_path, monkeypatch):
    path = save_model(_notebook(), tmp_path / "m.npz")
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        save_model(_dense(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write into read-only directories")
def test_unwritable_directory(tmp_path):
    path = save_model(_notebook(), tmp_path / "m.npz")
    before = path.read_bytes()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OSError):
            save_model(_dense(), path)
    finally:
        tmp_path.chmod(0o700)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_unserialisable_metadata_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_model(_dense(), tmp_path / "m.npz", training={"bad": object()})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- not a model file
def test_missing_path_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [
    b"",
    os.urandom(3000),
    b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(200),
    b"w1,b1\n1,2\n",
    b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" + b" " * 50 + b"\n",
], ids=["empty", "random", "png", "csv", "npy-not-npz"])
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    message = _assert_refused(path, "not a MLP Lab model file (.npz)")
    if not content:
        assert "empty" in message


def test_real_png_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    _assert_refused(tmp_path / "digit.png", "not a MLP Lab model file (.npz)")


def test_truncated_file(tmp_path):
    data = model_to_bytes(_dense())
    for cut in (len(data) // 2, len(data) - 10, 100):
        _assert_refused(data[:cut], "end is missing or damaged")
    (tmp_path / "half.npz").write_bytes(data[: len(data) // 2])
    _assert_refused(tmp_path / "half.npz", "not a MLP Lab model file (.npz)")


def test_file_too_large(tmp_path, monkeypatch):
    data = model_to_bytes(_dense())
    (tmp_path / "m.npz").write_bytes(data)
    monkeypatch.setattr(persistence, "MAX_FILE_BYTES", len(data) - 1)
    _assert_refused(tmp_path / "m.npz", "MB")
    _assert_refused(io.BytesIO(data), "larger than")


# ----------------------------------------------------------------------------- bad metadata
def test_missing_meta(tmp_path):
    model = _dense()
    _write(tmp_path / "m.npz", dict(model.params))
    _assert_refused(tmp_path / "m.npz", "'__meta__'")


@pytest.mark.parametrize("meta, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ({"format": "something-else", "version": 1}, "format"),
    ({"format": "mlp-lab-model", "version": 99, "model": {"kind": "dense"}}, "newer"),
    ({"format": "mlp-lab-model", "version": "1", "model": {"kind": "dense"}}, "version"),
    ({"format": "mlp-lab-model", "version": 1}, "'model'"),
], ids=["bad-json", "not-object", "deep-nesting", "format", "newer-version", "version-type", "no-model"])
def test_bad_meta(tmp_path, meta, fragment):
    model = _dense()
    _write(tmp_path / "m.npz", {**model.params, "__meta__": _meta_array(meta)})
    _assert_refused(tmp_path / "m.npz", fragment)


def test_meta_not_utf8(tmp_path):
    model = _dense()
    _write(tmp_path / "m.npz", {**model.params, "__meta__": np.frombuffer(b"\xff\xfe{}", np.uint8)})
    _assert_refused(tmp_path / "m.npz", "UTF-8")


def test_meta_as_unicode_string_array_is_accepted(tmp_path):
    model = _notebook()
    _write(tmp_path / "m.npz", {**model.params, "__meta__": np.array(json.dumps(_valid_meta(model)))})
    loaded, _ = load_model(tmp_path / "m.npz")
    assert np.array_equal(loaded.params["w3"], model.params["w3"])


def test_meta_with_wrong_dtype(tmp_path):
    model = _dense()
    _write(tmp_path / "m.npz", {**model.params, "__meta__": np.zeros(3, np.float64)})
    _assert_refused(tmp_path / "m.npz", "'__meta__'", "float64")


@pytest.mark.parametrize("config, fragment", [
    ({"kind": "transformer"}, "'transformer'"),
    ({"kind": "dense", "activation": "swish"}, "activation"),
    ({"kind": "dense", "hidden": [0]}, "hidden"),
    ({"kind": "dense", "hidden": "big"}, "hidden"),
    ({"kind": "notebook", "colour": "blue"}, "colour"),
    ({"kind": "notebook", "dtype": "int8"}, "dtype"),
    ({"kind": "notebook", "dtype": {"x": 1}}, "not usable"),
], ids=["unknown-kind", "activation", "zero-hidden", "hidden-str", "unknown-setting", "int-dtype", "dtype-dict"])
def test_unusable_model_settings(tmp_path, config, fragment):
    model = _dense()
    meta = {**_valid_meta(model), "model": config}
    _write(tmp_path / "m.npz", {**model.params, "__meta__": _meta_array(meta)})
    _assert_refused(tmp_path / "m.npz", fragment)


def test_settings_for_a_giant_network_are_refused_without_building_it(tmp_path):
    model = _dense()
    meta = {**_valid_meta(model), "model": {**model.config(), "hidden": [10**9, 10**9]}}
    _write(tmp_path / "m.npz", {**model.params, "__meta__": _meta_array(meta)})
    tracemalloc.start()
    try:
        _assert_refused(tmp_path / "m.npz", "parameters")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


# ----------------------------------------------------------------------------- bad parameters
def test_missing_parameter(tmp_path):
    model = _dense()
    params = dict(model.params)
    del params["b2"]
    _write(tmp_path / "m.npz", {**params, "__meta__": _meta_array(_valid_meta(model))})
    _assert_refused(tmp_path / "m.npz", "missing parameter(s) b2")


def test_unexpected_entry(tmp_path):
    model = _dense()
    arrays = {**model.params, "w9": np.zeros(3, np.float32), "__meta__": _meta_array(_valid_meta(model))}
    _write(tmp_path / "m.npz", arrays)
    _assert_refused(tmp_path / "m.npz", "unexpected entry w9")


def test_member_that_is_not_npy(tmp_path):
    data = model_to_bytes(_dense())
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("readme.txt", "hello")
    _assert_refused(buffer.getvalue(), "readme.txt")


def test_wrong_shape(tmp_path):
    model = _dense()
    arrays = {**model.params, "w2": np.zeros((16, 32), np.float32), "__meta__": _meta_array(_valid_meta(model))}
    _write(tmp_path / "m.npz", arrays)
    _assert_refused(tmp_path / "m.npz", "w2", "(16, 32)", "(32, 16)")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex64, np.float16, "U3"])
def test_wrong_dtype(tmp_path, dtype):
    model = _dense()
    bad = np.zeros(model.params["b1"].shape, dtype=dtype)
    _write(tmp_path / "m.npz", {**model.params, "b1": bad, "__meta__": _meta_array(_valid_meta(model))})
    _assert_refused(tmp_path / "m.npz", "b1", "dtype")


@pytest.mark.parametrize("value, fragment", [
    (np.nan, "contains NaN"), (np.inf, "contains infinite"), (-np.inf, "contains infinite"),
    (1e300, "too large for float32"),
])
def test_non_finite_parameter(tmp_path, value, fragment):
    model = _dense()  # float32: a float64 1e300 does not fit
    w3 = model.params["w3"].astype(np.float64)
    w3[2, 1] = value
    _write(tmp_path / "m.npz", {**model.params, "w3": w3, "__meta__": _meta_array(_valid_meta(model))})
    _assert_refused(tmp_path / "m.npz", "w3", fragment)


def test_float64_file_into_float32_model_is_cast(tmp_path):
    model = _dense()
    params64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    _write(tmp_path / "m.npz", {**params64, "__meta__": _meta_array(_valid_meta(model))})
    loaded, _ = load_model(tmp_path / "m.npz")
    assert loaded.params["w1"].dtype == np.float32
    assert np.array_equal(loaded.params["w1"], model.params["w1"])


# ----------------------------------------------------------------------------- pickles: never executed
class _Trap:
    """Unpickling this object would create the marker file (i.e. run code from the file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _object_array(marker: Path) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = _Trap(marker)
    return arr


def test_the_trap_works_when_pickles_are_allowed(tmp_path):
    """Sanity check of the test below: with allow_pickle=True the marker does appear."""
    marker = tmp_path / "sanity-marker"
    _write(tmp_path / "m.npz", {"x": _object_array(marker)}, allow_pickle=True)
    with np.load(tmp_path / "m.npz", allow_pickle=True) as npz:
        npz["x"]
    assert marker.exists()


@pytest.mark.parametrize("where", ["extra-key", "parameter", "meta"])
def test_pickled_object_array_is_refused_and_not_executed(tmp_path, where):
    model = _dense()
    marker = tmp_path / "pwned"
    arrays = {**model.params, "__meta__": _meta_array(_valid_meta(model))}
    if where == "extra-key":
        arrays["payload"] = _object_array(marker)
    elif where == "parameter":
        arrays["w1"] = _object_array(marker)
    else:
        arrays["__meta__"] = _object_array(marker)
    _write(tmp_path / "m.npz", arrays, allow_pickle=True)
    _assert_refused(tmp_path / "m.npz", "pickled")
    assert not marker.exists()


def test_whole_file_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "m.npz").write_bytes(pickle.dumps(_Trap(marker)))
    _assert_refused(tmp_path / "m.npz", "not a MLP Lab model file")
    assert not marker.exists()


# ----------------------------------------------------------------------------- absurd headers
def _npy_bytes(shape, descr="<f4", data=b"\x00" * 16, version=(1, 0)) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    length_bytes = 2 if version == (1, 0) else 4
    prefix = 6 + 2 + length_bytes
    header += b" " * ((-(prefix + len(header) + 1)) % 64) + b"\n"
    magic = b"\x93NUMPY" + bytes(version)
    return magic + len(header).to_bytes(length_bytes, "little") + header + data


def _zip_with(model, name: str, npy: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, value in {**model.params, "__meta__": _meta_array(_valid_meta(model))}.items():
            if key == name:
                continue
            item = io.BytesIO()
            np.lib.format.write_array(item, np.asarray(value))
            zf.writestr(f"{key}.npy", item.getvalue())
        zf.writestr(f"{name}.npy", npy)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["w1", "__meta__", "extra"])
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_gigantic_declared_shape_is_refused_without_allocating(tmp_path, name, version):
    model = _dense()
    data = _zip_with(model, name, _npy_bytes((100000, 100000), version=version))
    (tmp_path / "m.npz").write_bytes(data)
    tracemalloc.start()
    try:
        _assert_refused(tmp_path / "m.npz", repr(name), "(100000, 100000)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the 40 GB the header claims were never asked for


def test_header_larger_than_its_data_is_refused(tmp_path):
    model = _dense()
    data = _zip_with(model, "w1", _npy_bytes((784, 32)))  # within limits, but 16 bytes of data
    _assert_refused(data, "'w1'", "truncated")


def test_unknown_npy_version_and_garbage_header(tmp_path):
    model = _dense()
    bad_version = _npy_bytes((32,), version=(9, 0))
    _assert_refused(_zip_with(model, "b1", bad_version))
    garbage = b"\x93NUMPY\x01\x00\x10\x00{'descr': __imp\n" + b"\x00" * 128
    _assert_refused(_zip_with(model, "b1", garbage))


def test_zip_bomb_member_is_refused(monkeypatch):
    model = _dense()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in {**model.params, "__meta__": _meta_array(_valid_meta(model))}.items():
            item = io.BytesIO()
            np.lib.format.write_array(item, np.asarray(value))
            zf.writestr(f"{key}.npy", item.getvalue())
        zf.writestr("zeros.npy", b"\x00" * (4 * 2**20))  # compresses to a few KB
    monkeypatch.setattr(persistence, "MAX_TOTAL_BYTES", 2 * 2**20)
    _assert_refused(buffer.getvalue(), "unpacks to")


# ----------------------------------------------------------------------------- fuzzing
_SMALL_MODEL = DenseMLP(hidden=(4,), seed=0)
_VALID = model_to_bytes(_SMALL_MODEL, training={"steps": 1}, extra={"x": [1, 2]})


def _load_or_value_error(data: bytes) -> None:
    try:
        model, meta = load_model(data)
    except ValueError as exc:
        assert str(exc).startswith(ERROR_PREFIX), str(exc)
        return
    # A mutation that still loads must still give a usable, finite model.
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert model.predict_proba(X[:2]).shape == (2, 10)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_value_error(data):
    _load_or_value_error(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.integers(0, 300),  # local header, w1's .npy header
                                    st.integers(len(_VALID) - 1500, len(_VALID) - 1),  # meta, directory
                                    st.integers(0, len(_VALID) - 1)),
                          st.integers(0, 255)),
                min_size=1, max_size=8),
       st.one_of(st.none(), st.integers(1, len(_VALID))))
def test_mutated_model_files_only_raise_value_error(mutations, cut):
    data = bytearray(_VALID)
    for position, value in mutations:
        data[position] = value
    _load_or_value_error(bytes(data[:cut]))


def test_valid_fuzz_seed_loads():
    model, meta = load_model(_VALID)
    assert meta["training"] == {"steps": 1}
    assert np.array_equal(model.params["w1"], _SMALL_MODEL.params["w1"])


def test_build_model_matches_saved_config():
    model = _dense(hidden=(7, 5, 3))
    assert build_model(model_from_bytes(model_to_bytes(model))[1]["model"]).param_shapes() == model.param_shapes()
