"""Hostile input, as a classroom server meets it: every kind of bad model upload through the
dashboard's lab (what the student reads; the current model untouched), and every kind of
bad image given to ``predict`` (one error per file, the other files still answered).

mlp_core/persistence's own checks are tested in detail in tests/test_persistence.py; here
each hostile file goes the whole way a student's upload goes. Run with ``-s`` to print the
message each file gets (the list in the issue's closing note comes from that).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlp_core import images
from mlp_core.images import digit_from_file, read_image
from mlp_core.networks import build_model
from mlp_core.persistence import model_to_bytes
from mlp_lab.choices import ModelChoice
from mlp_lab.lab import LabSession

ROOT = Path(__file__).resolve().parents[1]
CHOICE = ModelChoice(kind="dense", hidden=(16,))
MARKER = Path(tempfile.gettempdir()) / "mlp-lab-hostile-marker"


class _Trap:
    """Unpickling this creates MARKER: proof that a payload ran."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


@pytest.fixture(scope="module")
def lab():
    lab = LabSession(CHOICE)
    lab.start(30)
    while lab.running:
        pass
    yield lab
    lab.close()


def _npz(arrays: dict, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **arrays)
    return buffer.getvalue()


def _valid_arrays(model=None) -> dict:
    model = model or build_model(CHOICE.model_config(), seed=1)
    data = np.load(io.BytesIO(model_to_bytes(model)))
    return {k: data[k] for k in data.files}


def _with(**changes) -> bytes:
    arrays = _valid_arrays()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    return _npz(arrays, allow_pickle=any(getattr(v, "dtype", None) == np.dtype(object) for v in changes.values()))


def _meta(**changes) -> np.ndarray:
    meta = json.loads(_valid_arrays()["__meta__"].tobytes())
    meta.update(changes)
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _object_array():
    array = np.empty(1, dtype=object)
    array[0] = _Trap()
    return array


def _npy_header_only(shape, descr="<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * ((-(10 + len(header) + 1)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 64


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _huge_header_file() -> bytes:
    members = {f"{k}.npy": _npy_bytes(v) for k, v in _valid_arrays().items() if k != "w1"}
    members["w1.npy"] = _npy_header_only((100_000, 100_000))  # 40 GB announced, 64 B present
    return _zip(members)


def _zip_bomb() -> bytes:
    members = {f"{k}.npy": _npy_bytes(v) for k, v in _valid_arrays().items()}
    members["padding.npy"] = b"\x00" * (300 * 2**20)  # 300 MB of zeros: ~300 KB compressed
    return _zip(members, zipfile.ZIP_DEFLATED)


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array))
    return buffer.getvalue()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD = _npz(_valid_arrays())
HOSTILE_MODELS = {
    # name: (the file's bytes, or a function making them; a fragment of the message)
    "pickle.npz (a whole-file pickle payload)": (lambda: pickle.dumps(_Trap()), "not a zip archive"),
    "object-array.npz (a pickled payload inside)": (lambda: _with(payload=_object_array()), "Python objects"),
    "pickled-weights.npz (w1 is a pickle)": (lambda: _with(w1=_object_array()), "Python objects"),
    "truncated.npz (half a model file)": (lambda: GOOD[: len(GOOD) // 2], "end is missing or damaged"),
    "empty.npz": (b"", "the file is empty"),
    "image.npz (a PNG renamed)": (_png, "not a zip archive"),
    "text.npz (plain text)": (b"hello, this is not a model\n" * 10, "not a zip archive"),
    "other.zip (a zip of text files)": (lambda: _zip({"notes.txt": b"hi"}), "not a NumPy array"),
    "no-meta.npz (arrays, no description)": (lambda: _with(__meta__=None), "no '__meta__' entry"),
    "other-format.npz (someone else's npz)": (lambda: _with(__meta__=_meta(format="keras")), "its format is"),
    "future.npz (a newer format version)": (lambda: _with(__meta__=_meta(version=99)), "newer MLP Lab"),
    "missing-key.npz (w2 left out)": (lambda: _with(w2=None), "missing parameter(s) w2"),
    "extra-key.npz (an unexpected array)": (lambda: _with(bonus=np.zeros(3, np.float32)), "unexpected entry bonus"),
    "wrong-shape.npz (w1 transposed)": (lambda: _with(w1=np.zeros((16, 784), np.float32)), "has shape (16, 784)"),
    "wrong-dtype.npz (int32 weights)": (lambda: _with(w1=np.zeros((784, 16), np.int32)), "dtype int32"),
    "complex.npz (complex weights)": (lambda: _with(w1=np.zeros((784, 16), np.complex64)), "dtype complex64"),
    "strings.npz (text weights)": (lambda: _with(w1=np.full((784, 16), "a")), "dtype <U1"),
    "nan.npz (NaN weights)": (lambda: _with(b1=np.full(16, np.nan, np.float32)), "contains NaN"),
    "inf.npz (infinite weights)": (lambda: _with(w2=np.full((16, 10), np.inf, np.float32)), "infinite values"),
    "overflow.npz (float64 too big for float32)": (lambda: _with(w2=np.full((16, 10), 1e300)), "too large for float32"),
    "huge-header.npz (w1 claims 100,000 x 100,000)": (_huge_header_file, "claims shape (100000, 100000)"),
    "zip-bomb.npz (unpacks to 300 MB)": (_zip_bomb, "unpacks to"),
    "giant-settings.npz (a 4-billion-weight network)":
        (lambda: _with(__meta__=_meta(model={**CHOICE.model_config(), "hidden": [65536, 65536]})),
         "its network has 2 hidden layers of 65,536 neurons; MLP Lab trains up to 4 layers of 1,024"),
    "oversized.npz (21 MB)": (lambda: b"PK\x03\x04" + bytes(21 * 2**20), "up to 20 MB"),
}


@pytest.mark.parametrize("name", list(HOSTILE_MODELS))
def test_every_hostile_model_upload_is_refused_and_the_model_stays(lab, name):
    content, fragment = HOSTILE_MODELS[name]
    data = content() if callable(content) else content
    MARKER.unlink(missing_ok=True)
    model, step, weights = lab.model, lab.trainer.step, {k: v.copy() for k, v in lab.model.params.items()}
    message = lab.load_bytes(data, name.split(" ")[0])
    print(f"\nUPLOAD {name}: {message}")
    assert message is not None, f"{name} was accepted"
    assert fragment in message, message
    assert message.startswith("Could not load") and message.endswith("Your current model is unchanged.")
    assert "Traceback" not in message and len(message) < 400
    assert lab.model is model and lab.trainer.step == step and lab.source == "fresh weights"
    for key, value in lab.model.params.items():
        np.testing.assert_array_equal(value, weights[key])
    assert not MARKER.exists(), "a pickle payload was executed"


def test_a_good_upload_still_loads_after_all_that(lab):
    assert lab.load_bytes(GOOD, "good.npz") is None and lab.source == "good.npz"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_crash_the_upload(lab, data):
    model = lab.model
    message = lab.load_bytes(data, "random.npz")
    assert message is not None and "unchanged" in message and lab.model is model


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(GOOD) - 1), flips=st.lists(
    st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), max_size=4))
def test_damaged_model_files_never_crash_the_upload(lab, cut, flips):
    data = bytearray(GOOD[:cut] if cut else GOOD)
    for position, xor in flips:
        if position < len(data):
            data[position] ^= xor
    model = lab.model
    message = lab.load_bytes(bytes(data), "damaged.npz")
    if message is None:  # a flip in unused bytes (e.g. padding) may leave a valid model
        assert all(np.isfinite(v).all() for v in lab.model.params.values())
    else:
        assert "unchanged" in message and lab.model is model


# --- images given to predict --------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height 8-bit gray pixels: its compressed data
    (a few KB of zeros) would unpack to width*height bytes."""
    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # the first 64 rows only
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))


def _digit_png(fmt: str = "PNG") -> bytes:
    image = Image.new("L", (280, 280), 255)
    image.paste(0, (120, 40, 160, 240))  # a thick black "1" on white
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _gif_bomb() -> bytes:
    gif = bytearray(_digit_png("GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen: 4.3 billion pixels
    return bytes(gif)


HOSTILE_IMAGES = {
    "notes.png (text)": (b"this is not a picture\n", "not an image"),
    "empty.png": (b"", "empty"),
    "truncated.png (half a PNG)": (lambda: _digit_png()[:200], "truncated or damaged"),
    "truncated.jpg (half a JPEG)": (lambda: _digit_png("JPEG")[:300], "damaged"),
    "header-only.png (8 bytes)": (b"\x89PNG\r\n\x1a\n", "not an image"),
    "model.png (an .npz renamed)": (lambda: GOOD, "not an image"),
    "bomb.png (50,000 x 50,000 pixels)": (lambda: png_bomb(50_000, 50_000), "too large"),
    "wide.png (1,000,000 x 100 pixels)": (lambda: png_bomb(1_000_000, 100), "too large"),
    "bomb.gif (65,535 x 65,535 pixels)": (_gif_bomb, "too large"),
    "zero.png (0 x 0 pixels)": (lambda: png_bomb(0, 0), "not an image"),
    "blank.png (all white)": (lambda: _blank_png(), "blank"),
}


def _blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (100, 100), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _materialise(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name.split(" ")[0]
    path.write_bytes(content() if callable(content) else content)
    return path


@pytest.mark.parametrize("name", list(HOSTILE_IMAGES))
def test_every_hostile_image_gets_a_clear_error(tmp_path, name):
    content, fragment = HOSTILE_IMAGES[name]
    path = _materialise(tmp_path, name, content)
    with pytest.raises(ValueError) as info:
        digit_from_file(path)
    print(f"\nIMAGE {name}: {info.value}")
    assert fragment in str(info.value), str(info.value)


def test_a_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    """The pixel cap is checked on the header: nothing of the bomb's size is allocated."""
    import tracemalloc

    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(20_000, 20_000))  # 400 M pixels: 400 MB if decoded
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="too large"):
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # the cap, not Pillow's, does the refusing
    path.write_bytes(png_bomb(20, 20))
    with pytest.raises(ValueError, match="at most 100"):
        read_image(path)


def test_decoding_bytes_checks_the_format_and_the_side_before_decoding():
    """decode_image, which the canvas's PNG parser (mlp_lab.drawing) calls."""
    assert images.decode_image(_digit_png()).shape == (280, 280)
    assert images.decode_image(_digit_png(), rgba=True).shape == (280, 280, 4)
    with pytest.raises(ValueError, match="at most 1120 on a side"):
        images.decode_image(png_bomb(1121, 1), max_side=1120)
    with pytest.raises(ValueError, match=r"expected PNG\)"):
        images.decode_image(_digit_png("GIF"), formats=["PNG"])
    with pytest.raises(ValueError, match="bytes or a binary file, got str"):
        images.decode_image("one.png")


def test_predict_answers_good_files_and_gives_one_error_per_bad_file(tmp_path):
    model_path = tmp_path / "model.npz"
    lab = LabSession(CHOICE)
    try:
        lab.start(300)
        while lab.running:
            pass
        model_path.write_bytes(lab.to_bytes())
    finally:
        lab.close()
    good = tmp_path / "one.png"
    good.write_bytes(_digit_png())
    bad = [_materialise(tmp_path, name, content) for name, (content, _) in HOSTILE_IMAGES.items()]
    proc = subprocess.run([sys.executable, "-m", "mlp_core", "predict", str(model_path), str(good),
                           *map(str, bad), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == 1 + len(bad)
    assert "digit" in answers[0]  # the good file is answered
    for answer, (name, (_, fragment)) in zip(answers[1:], HOSTILE_IMAGES.items()):
        assert fragment in answer["error"], (name, answer)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_an_image_only_raise_value_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.png"
        path.write_bytes(data)
        try:
            read_image(path)
        except ValueError:
            pass


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(1, 2000), flips=st.lists(st.tuples(st.integers(0, 1999), st.integers(1, 255)),
                                                 max_size=4), fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]))
def test_damaged_images_only_raise_value_error(cut, flips, fmt):
    data = bytearray(_digit_png(fmt)[:cut])
    for position, xor in flips:
        if position < len(data):
            data[position] ^= xor
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"damaged.{fmt.lower()}"
        path.write_bytes(bytes(data))
        try:
            array = read_image(path)
        except ValueError:
            return
        assert array.dtype == np.uint8 and array.size <= images.MAX_PIXELS * 4
