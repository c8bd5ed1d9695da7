"""Deskewing (mlp_core.preprocess.deskew_images): a slanted digit comes out upright, an
upright one stays, and the same function serves training images, test images and drawings
(a deskewing model prepares every input with it; older models are unchanged)."""

import numpy as np
import pytest

from mlp_core import build_model
from mlp_core.preprocess import deskew_images, preprocess_digit


def _slant(img):
    """cov(row, column) / var(row) of a (28, 28) image: columns moved right per row down."""
    rows, cols = np.indices(img.shape)
    m = img.sum()
    r, c = (img * rows).sum() / m, (img * cols).sum() / m
    return float((img * (rows - r) * (cols - c)).sum() / (img * (rows - r) ** 2).sum())


def _italic_bar(slope=0.4):
    x = np.zeros((28, 28), np.float32)
    for row in range(4, 24):
        col = 14 + slope * (row - 14)
        lo = int(np.floor(col))
        x[row, lo:lo + 2] = 1.0
    return x


def test_a_slanted_bar_comes_out_upright():
    bar = _italic_bar(0.4)
    assert _slant(bar) == pytest.approx(0.4, abs=0.05)
    straight = deskew_images(bar[None])[0]
    assert abs(_slant(straight)) < 0.02
    # The centre of mass stays put and no ink is lost.
    rows, cols = np.indices(bar.shape)
    for img in (bar, straight):
        assert (img * cols).sum() / img.sum() == pytest.approx((bar * cols).sum() / bar.sum(), abs=0.1)
    assert straight.sum() == pytest.approx(bar.sum(), rel=0.02)


def test_mnist_digits_lose_their_slant(mnist):
    (x, _), _ = mnist
    images = (x[:500] / 255.0).astype(np.float32)
    before = np.array([_slant(i) for i in images])
    after = np.array([_slant(i) for i in deskew_images(images)])
    assert np.abs(before).mean() > 0.15  # MNIST digits lean, most to the right
    assert np.abs(after).mean() < 0.03


def test_shapes_range_and_blank_images(mnist):
    (x, _), _ = mnist
    flat = (x[:10] / 255.0).reshape(10, 784)
    out = deskew_images(flat)
    assert out.shape == (10, 784) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    blank = np.zeros((2, 28, 28), np.float32)
    np.testing.assert_array_equal(deskew_images(blank), blank)
    dash = np.zeros((1, 28, 28), np.float32)
    dash[0, 14, 8:20] = 1  # one row: no height to measure a slant over, left alone
    np.testing.assert_array_equal(deskew_images(dash), dash)
    with pytest.raises(ValueError, match="floats"):
        deskew_images(x[:2])


def test_chunks_give_the_same_as_one_go(mnist):
    (x, _), _ = mnist
    images = (x[:4100] / 255.0).astype(np.float32)
    whole = deskew_images(images)
    np.testing.assert_array_equal(whole[4000:], deskew_images(images[4000:]))


def test_preprocess_digit_deskews_a_drawing_when_asked():
    canvas = np.zeros((280, 280), np.uint8)
    for row in range(40, 240):  # an italic 1, leaning right (its top to the right)
        col = int(140 - 0.5 * (row - 140))
        canvas[row, col - 10:col + 10] = 255
    plain = preprocess_digit(canvas)
    straight = preprocess_digit(canvas, deskew=True)
    assert _slant(plain) < -0.2
    assert abs(_slant(straight)) < 0.05
    np.testing.assert_allclose(straight, deskew_images(plain[None])[0])


def test_a_deskewing_model_prepares_every_input_and_an_old_one_does_not(mnist):
    (x, _), _ = mnist
    images = (x[:20] / 255.0).astype(np.float32)
    old = build_model({"kind": "dense", "hidden": [16]}, seed=0)
    new = build_model({"kind": "dense", "hidden": [16], "deskew": True}, seed=0)
    assert "deskew" not in old.config() and new.config()["deskew"] is True
    np.testing.assert_array_equal(old.prepare(images), images)
    np.testing.assert_array_equal(new.prepare(images), deskew_images(images))
    # Same weights: the deskewing model's answer on an image is the old one's on its deskewed copy.
    np.testing.assert_allclose(new.predict_proba(images), old.predict_proba(deskew_images(images)), rtol=1e-6)
    np.testing.assert_allclose(new.predict_proba(deskew_images(images), prepared=True),
                               old.predict_proba(deskew_images(images)), rtol=1e-6)
    assert new.copy().deskew


def test_normalise_strokes_evens_out_the_pen(mnist):
    from mlp_core.preprocess import STROKE_WIDTH, change_thickness, normalise_strokes, stroke_width

    (x, _), _ = mnist
    images = (x[:200] / 255.0).astype(np.float32)
    bold = change_thickness(images, np.ones(200))  # about 1.4 px bolder
    bolder = change_thickness(bold, np.ones(200))  # about 2.8 px bolder
    thin = change_thickness(images, -np.ones(200) * 0.6)
    # (median stroke width before, at most this far from STROKE_WIDTH after): two steps
    # close most of any gap; a very bold pen keeps a little of its boldness.
    for variant, within in ((images, 0.3), (bold, 0.4), (bolder, 0.7), (thin, 0.3)):
        out = normalise_strokes(variant)
        assert out.shape == variant.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
        after = np.median(stroke_width(out))
        assert abs(after - STROKE_WIDTH) < within, (np.median(stroke_width(variant)), after)
    assert np.median(stroke_width(bolder)) > STROKE_WIDTH + 2  # it really was bold before
    blank = np.zeros((1, 28, 28), np.float32)
    np.testing.assert_array_equal(normalise_strokes(blank), blank)


def test_a_model_that_evens_out_strokes_prepares_with_both_steps(mnist):
    from mlp_core.preprocess import normalise_strokes

    (x, _), _ = mnist
    images = (x[:20] / 255.0).astype(np.float32)
    model = build_model({"kind": "dense", "hidden": [16], "deskew": True, "strokes": True}, seed=0)
    assert model.config()["strokes"] is True and model.prepares
    np.testing.assert_allclose(model.prepare(images), normalise_strokes(deskew_images(images)))
    assert not build_model({"kind": "notebook"}).prepares
