"""The committed canvas set (canvas_set/digits.zip) and its replay through the Test page's path."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from mlp_core.networks import build_model
from mlp_lab.canvas_set import (CanvasSet, canvas_state, images, load_canvas_set, pixels, replay,
                                small_png)
from mlp_lab.drawing import digit_from_canvas_state


@pytest.fixture(scope="module")
def canvas_set() -> CanvasSet:
    return load_canvas_set()


def test_the_set_loads_with_enough_drawings_of_every_digit(canvas_set):
    assert len(canvas_set) >= 500
    assert len(canvas_set.pngs) == len(canvas_set.labels) == len(canvas_set.styles) == len(canvas_set)
    assert set(canvas_set.labels.tolist()) <= set(range(10))
    assert np.bincount(canvas_set.labels, minlength=10).min() >= 50
    for name, label, style in zip(canvas_set.files, canvas_set.labels, canvas_set.styles):
        assert name.endswith(f"_{label}.png") and style
    assert len(set(canvas_set.files)) == len(canvas_set)


def test_every_png_is_a_canvas_drawing_the_page_reads(canvas_set):
    for name, png in zip(canvas_set.files, canvas_set.pngs):
        assert png[:8] == b"\x89PNG\r\n\x1a\n", name
        rgba = pixels(png)
        assert rgba.shape == (280, 280, 4), name  # the Test page's canvas on a laptop
        assert (rgba[..., 3] == 255).all(), name  # the black background is opaque
        image, problem = digit_from_canvas_state(canvas_state(png))
        assert problem is None and image.shape == (28, 28) and image.dtype == np.float32, name
        assert 0.0 <= image.min() and image.max() == pytest.approx(1.0), name


def test_replay_gives_a_consistent_confusion_matrix(canvas_set):
    model = build_model({"kind": "dense", "hidden": [16], "activation": "relu",
                         "loss": "cross_entropy", "init": "he"}, seed=3)  # tiny, untrained
    result = replay(model, canvas_set)
    assert result.n == len(canvas_set) and result.unreadable == 0
    assert result.confusion.shape == (10, 10) and result.confusion.sum() == len(canvas_set)
    assert (result.confusion.sum(axis=1) == np.bincount(canvas_set.labels, minlength=10)).all()
    assert result.accuracy == pytest.approx(np.trace(result.confusion) / len(canvas_set))
    per_digit = np.diag(result.confusion) / result.confusion.sum(axis=1)
    assert np.allclose(result.per_digit, per_digit)
    x, readable = images(canvas_set.pngs)  # the page's images -> the model, as the page asks it
    assert readable.all()
    assert (result.predicted == model.predict_proba(x).argmax(axis=1)).all()


def test_replay_counts_every_answer_where_the_model_puts_it():
    class AlwaysThree:
        def predict_proba(self, x):
            p = np.zeros((len(x), 10))
            p[:, 3] = 1
            return p

    set_ = load_canvas_set()
    result = replay(AlwaysThree(), set_)
    assert (result.confusion[:, 3] == np.bincount(set_.labels, minlength=10)).all()
    assert result.per_digit[3] == 1.0 and result.per_digit[np.arange(10) != 3].sum() == 0


def test_small_png_keeps_every_pixel_and_refuses_what_it_cannot_keep():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (280, 280), dtype=np.uint8)
    gray[gray < 200] = 0  # strokes on black, like the canvas
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    out = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(out, "PNG", compress_level=1)
    png = out.getvalue()
    smaller = small_png(png)
    assert len(smaller) < len(png) and np.array_equal(pixels(smaller), rgba)
    rgba[0, 0] = [255, 0, 0, 255]  # a colour a grey PNG cannot hold: kept as it is
    out = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(out, "PNG")
    assert small_png(out.getvalue()) == out.getvalue()


def test_a_zip_whose_labels_do_not_match_is_refused(tmp_path, canvas_set):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("0000_3.png", canvas_set.pngs[0])
        archive.writestr("labels.csv", "file,label,style\n0000_3.png,4,wrong label\n")
    with pytest.raises(ValueError, match="bad row"):
        load_canvas_set(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("0000_3.png", canvas_set.pngs[0])
    with pytest.raises(ValueError, match="no labels.csv"):
        load_canvas_set(path)


@pytest.mark.slow
def test_the_default_dashboard_model_reads_the_canvas_set(canvas_set):
    """One press of Train (the Model page's default, 2,000 steps) through the Test page's
    path: measured 96.43 % on 2026-12-02 (benchmarks/bench_drawings.py; the old default,
    before deskew and stroke normalisation, 94.29 %); the floor is below it."""
    from canvas_set.measure import train_default

    lab = train_default(2000)
    try:
        result = replay(lab, canvas_set)
    finally:
        lab.close()
    assert result.accuracy >= 0.93, f"{result.accuracy:.1%}, per digit {np.round(result.per_digit, 2)}"
