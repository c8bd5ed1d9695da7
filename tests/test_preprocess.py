"""Tests for mlp_core.preprocess.preprocess_digit, checked against real MNIST digits.

Similarity measure: cosine similarity of the two 28x28 outputs, viewed as 784-vectors
(1 = same picture up to brightness). For reference, on these digits a 1-px shift of
a digit gives ~0.79, a 2-px shift ~0.50, and two different digits of the same class
~0.49 on average. So > 0.99 means "the same image", and the looser thickening bound
(> 0.85 shift-tolerant) is still far above "misplaced" or "some other digit".
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from mlp_core.preprocess import preprocess_digit

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "mlp_core" / "data" / "mnist.npz"
ROWS, COLS = np.mgrid[:28, :28]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """40 real MNIST test digits, 4 of each class, (40, 28, 28) uint8."""
    with np.load(MNIST, allow_pickle=False) as data:
        x, y = data["x_test"], data["y_test"]
    picks = np.concatenate([np.flatnonzero(y == k)[:4] for k in range(10)])
    return x[picks]


@pytest.fixture(scope="module")
def plain(digits) -> list[np.ndarray]:
    """The reference outputs: each digit preprocessed as it comes in MNIST."""
    return [preprocess_digit(d) for d in digits]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def shift_tolerant_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Best cosine over whole-pixel shifts of up to 1 px: MNIST itself rounds the
    centring shift to whole pixels, so two equally valid placements can differ by 1 px."""
    return max(cosine(np.roll(a, (dy, dx), axis=(0, 1)), b)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    mass = img.sum()
    return float((img * ROWS).sum() / mass), float((img * COLS).sum() / mass)


def bbox(img: np.ndarray) -> tuple[int, int]:
    """(height, width) of the nonzero pixels."""
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def upsample(img: np.ndarray, k: int = 8) -> np.ndarray:
    """Nearest-neighbour k-fold enlargement, like a digit drawn on a big canvas."""
    return np.kron(img, np.ones((k, k), dtype=img.dtype))


def dilate(img: np.ndarray, r: int) -> np.ndarray:
    """Dilation by a disc of radius r px: the max over all shifts inside the disc."""
    padded, out = np.pad(img, r), img.copy()
    h, w = img.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                out = np.maximum(out, padded[r + dy : r + dy + h, r + dx : r + dx + w])
    return out


def off_centre(img: np.ndarray, size: int = 200, top: int = 15, left: int = 150) -> np.ndarray:
    canvas = np.zeros((size, size), dtype=img.dtype)
    canvas[top : top + img.shape[0], left : left + img.shape[1]] = img
    return canvas


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def rgba_opaque(gray: np.ndarray) -> np.ndarray:
    return np.dstack([rgb(gray), np.full_like(gray, 255)])


TRANSFORMS = {  # name -> what a canvas / camera might hand us instead of the digit
    "off-centre in 200x200": off_centre,
    "8x upsampled to 224x224": upsample,
    "black ink on white": lambda d: 255 - d,
    "black on white, RGB": lambda d: rgb(255 - d),
    "black on white, opaque RGBA": lambda d: rgba_opaque(255 - d),
    "white on black, opaque RGBA": rgba_opaque,
    "white ink on transparent RGBA": lambda d: np.dstack([np.full((*d.shape, 3), 255, np.uint8), d]),
    "black ink on transparent RGBA": lambda d: np.dstack([np.zeros((*d.shape, 3), np.uint8), d]),
    "float 0-1": lambda d: d / 255.0,
    "upsampled, off-centre, inverted RGBA": lambda d: rgba_opaque(255 - off_centre(upsample(d), 300, 5, 60)),
}


def test_mnist_digit_is_nearly_unchanged(digits, plain):
    # MNIST digits are already in the target form, so preprocessing must (almost)
    # give them back: only sub-threshold grey pixels (< 0.1) are dropped as noise.
    for d, out in zip(digits, plain):
        assert cosine(out, d / 255.0) > 0.99
        assert np.abs(out - d / 255.0).mean() < 0.01


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_canvas_variants_match_plain_digit(digits, plain, name):
    # Moving, enlarging, inverting or re-encoding a digit must not change what the
    # network sees (> 0.99 = the same image), and the result must be centred like
    # MNIST: centre of mass within 0.5 px of (14, 14) on each axis (whole-px shifts).
    for d, ref in zip(digits, plain):
        out = preprocess_digit(TRANSFORMS[name](d))
        assert cosine(out, ref) > 0.99, name
        assert np.all(np.abs(np.array(center_of_mass(out)) - 14.0) <= 0.5), name


def test_non_integer_enlargement_matches(digits, plain):
    # A 3.3x nearest-neighbour enlargement (28 -> 93 px) has uneven pixel widths, so
    # after shrinking back the centre of mass moves by a fraction of a pixel, which can
    # tip the whole-pixel centring by 1 px (plain cosine then drops to ~0.8, as for any
    # 1-px shift). Up to that MNIST-style placement jitter the image is the same:
    # shift-tolerant cosine > 0.98 (observed min 0.993).
    rows = np.arange(93) * 28 // 93
    for d, ref in zip(digits, plain):
        out = preprocess_digit(d[np.ix_(rows, rows)])
        assert shift_tolerant_cosine(out, ref) > 0.98
        assert np.all(np.abs(np.array(center_of_mass(out)) - 14.0) <= 0.5)


def test_thickened_strokes_still_match(digits, plain):
    # Dilating by 3 canvas px (= 3/8 MNIST px on each side of every stroke) really
    # makes MNIST's 2-3 px strokes ~25% thicker, so the image does change and an exact
    # match is impossible; it can also tip the whole-pixel centring by 1 px. We only ask
    # that it stays the same digit in the same place: shift-tolerant cosine > 0.85
    # (observed min 0.90), above the same-class average of ~0.49 and a 1-px miss of ~0.79.
    for d, ref in zip(digits, plain):
        out = preprocess_digit(dilate(upsample(d), 3))
        assert shift_tolerant_cosine(out, ref) > 0.85
        assert np.all(np.abs(np.array(center_of_mass(out)) - 14.0) <= 0.5)


def test_blank_images_give_none():
    # No ink at all (uniform, or only noise fainter than ink_threshold) -> None.
    rng = np.random.default_rng(0)
    noise = 0.5 + rng.uniform(-0.05, 0.05, size=(64, 64))
    blanks = {
        "all black": np.zeros((28, 28), np.uint8),
        "all white": np.full((100, 100), 255, np.uint8),
        "all transparent RGBA": np.zeros((50, 50, 4), np.uint8),
        "opaque white RGBA": np.full((50, 50, 4), 255, np.uint8),
        "grey + faint noise": noise,
        "black + faint uint8 noise": rng.integers(0, 20, size=(64, 64)).astype(np.uint8),
    }
    for name, img in blanks.items():
        assert preprocess_digit(img) is None, name
    # ...while a lower threshold makes the same noise count as ink.
    assert preprocess_digit(noise, ink_threshold=0.01) is not None


def test_output_format(digits):
    # Whatever comes in: float32, (28, 28), values in [0, 1], strongest ink exactly 1.
    canvas = np.zeros((400, 300, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[50:350, 140:160, :3] = 200  # grey stroke on opaque black
    for img in [digits[0], canvas, upsample(digits[5]).astype(np.float64) / 255, np.eye(8)]:
        out = preprocess_digit(img)
        assert out.dtype == np.float32 and out.shape == (28, 28)
        assert out.min() >= 0.0 and out.max() == 1.0


def test_aspect_ratio_is_preserved():
    # Longest side -> 20 px, the other side scaled by the same factor (as MNIST).
    tall = np.zeros((300, 300), np.uint8)
    tall[60:210, 140:160] = 255  # a thin '1', 150 x 20
    wide = np.zeros((300, 300), np.uint8)
    wide[100:130, 50:250] = 255  # a dash, 30 x 200
    assert bbox(preprocess_digit(tall)) == (20, 3)  # 20 / 150 * 20 = 2.7 -> 3
    assert bbox(preprocess_digit(wide)) == (3, 20)


def test_tiny_drawing_is_enlarged_smoothly():
    # A 5-px-tall '7' is enlarged (Lanczos interpolation) to a 20-px-tall digit with
    # grey transitions, not blown-up blocks.
    seven = np.zeros((12, 12))
    seven[3, 4:8] = 1.0
    seven[4:8, 7 - np.arange(4) // 2] = 1.0
    out = preprocess_digit(seven)
    assert max(bbox(out)) == 20
    assert ((out > 0.05) & (out < 0.95)).sum() > 20


def test_enlarging_is_pillows_lanczos_and_shrinking_averages_areas():
    # Independent reference: Pillow's LANCZOS resize of a float image (mode "F").
    from PIL import Image

    from mlp_core.preprocess import _resample_matrix

    small = np.random.default_rng(0).random((8, 6)).astype(np.float32)
    ours = _resample_matrix(8, 20) @ small @ _resample_matrix(6, 15).T
    pillow = np.asarray(Image.fromarray(small, mode="F").resize((15, 20), Image.LANCZOS))
    np.testing.assert_allclose(ours, pillow, atol=1e-5)
    # shrinking 4 -> 2 averages pairs of pixels
    np.testing.assert_allclose(_resample_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_a_low_resolution_gap_stays_open():
    # Two strokes one pixel apart in a low-resolution picture (the two sides of a 4, a 9's
    # small loop), enlarged 2.5x: Lanczos keeps the dark gap between them (linear
    # interpolation filled it to 0.19 of the ink); nothing below 0 is left.
    two = np.zeros((12, 12))
    two[2:10, 4] = two[2:10, 6] = 1.0
    out = preprocess_digit(two)
    row = out[14]
    assert out.min() >= 0.0 and row.max() > 0.9
    ink = np.flatnonzero(row > 0.5)
    assert row[ink[0]:ink[-1]].min() < 0.1


def test_longest_side_matches_mnist(digits):
    # Network-independent statistic: every MNIST digit has a bounding box whose longest
    # side is 20 px; a big canvas drawing (8x upsampled digit) must come out the same,
    # and the centres of mass must average (14, 14) like MNIST's.
    outs = [preprocess_digit(off_centre(upsample(d), 300, 30, 40)) for d in digits]
    for d, out in zip(digits, outs):
        assert max(bbox(d)) == 20
        assert abs(max(bbox(out)) - 20) <= 1
    mean_com = np.mean([center_of_mass(o) for o in outs], axis=0)
    assert np.allclose(mean_com, 14.0, atol=0.25)


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((10, 10, 2), np.uint8), "shape (10, 10, 2)"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape (2, 10, 10, 3)"),
    (np.zeros(10, np.uint8), "shape (10,)"),
    (np.zeros((0, 0), np.uint8), "empty"),
    (np.array([["a", "b"], ["c", "d"]]), "dtype <U1"),
    (np.array([[None, 1]]), "dtype object"),
    (np.full((5, 5), np.nan), "NaN"),
])
def test_bad_inputs_raise_clear_errors(bad, fragment):
    # Bad input -> ValueError stating what was expected and what was received.
    with pytest.raises(ValueError, match="expected") as info:
        preprocess_digit(bad)
    assert fragment in str(info.value)


def test_module_imports_only_numpy():
    # The engine must stay pure NumPy: no Pillow / scipy / streamlit at module level.
    tree = ast.parse((ROOT / "mlp_core" / "preprocess.py").read_text())
    modules = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= {"numpy", "__future__"}
