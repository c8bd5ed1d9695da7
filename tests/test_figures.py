"""The dashboard's pure parts, without Streamlit or a browser: figure builders (arrays in,
Plotly figure out), the layer descriptions and the canvas-to-image step."""

import base64

import numpy as np
import plotly.graph_objects as go
import pytest

from mlp_core import DenseMLP, NotebookNet
from mlp_lab import figures
from mlp_lab.drawing import digit_from_canvas, random_batch
from mlp_lab.layers import layer_views


def values(array_like) -> np.ndarray:
    """A trace's data as NumPy (Plotly may keep arrays as typed-array dicts)."""
    if isinstance(array_like, dict) and "bdata" in array_like:
        flat = np.frombuffer(base64.b64decode(array_like["bdata"]), dtype=array_like["dtype"])
        return flat.reshape(array_like["shape"]) if "shape" in array_like else flat
    return np.asarray(array_like)


# --- curves ---------------------------------------------------------------------------------
def test_smooth_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    x = rng.random(101)
    for window in (1, 2, 5, 10, 200):
        half = window // 2
        # reference: the mean of the values within `half` of each index, cut at the ends
        expected = [x[max(0, i - half):min(len(x), i + half + 1)].mean() for i in range(len(x))]
        np.testing.assert_allclose(figures.smooth(x, window), expected)


def test_thin_keeps_ends_and_caps_points():
    assert list(figures.thin(5, 10)) == [0, 1, 2, 3, 4]
    idx = figures.thin(100_000, 1500)
    assert len(idx) <= 1500 and idx[0] == 0 and idx[-1] == 99_999
    assert np.all(np.diff(idx) > 0)


def test_loss_figure_raw_and_smoothed_with_fixed_x_axis():
    steps = np.arange(1, 201)
    losses = 2.0 / steps
    fig = figures.loss_figure(steps, losses, x_max=2000)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    raw, trend = fig.data
    np.testing.assert_allclose(values(raw.y), losses, rtol=1e-6)  # every point kept when few
    assert trend.line.width > raw.line.width  # the trend is the bold one
    assert fig.layout.xaxis.range[1] >= 2000  # the axis is where the run will end, not the data
    assert fig.layout.yaxis.type == "linear"


def test_loss_figure_thins_long_runs_and_supports_log_axis():
    steps = np.arange(1, 20_001)
    losses = np.r_[0.0, np.full(19_999, 0.5)]  # a zero loss cannot be drawn on a log axis
    fig = figures.loss_figure(steps, losses, log_y=True)
    assert len(values(fig.data[0].x)) <= figures.MAX_CURVE_POINTS
    assert fig.layout.yaxis.type == "log"
    assert np.isnan(values(fig.data[0].y)[0])


def test_empty_curves_say_what_to_do():
    fig = figures.loss_figure([], [])
    assert not fig.data and "press Train" in fig.layout.annotations[0].text
    assert not figures.accuracy_figure([], []).data


def test_accuracy_figure_in_percent():
    fig = figures.accuracy_figure([100, 200], [0.5, 0.9])
    np.testing.assert_allclose(values(fig.data[0].y), [50, 90])
    assert list(fig.layout.yaxis.range) == [0, 101]


# --- weights --------------------------------------------------------------------------------
def test_heatmap_small_is_exact_and_centred_on_zero():
    w = np.array([[0.5, -1.0], [0.25, 0.0]])
    fig = figures.weight_heatmap(w, "w3", rows="neuron", cols="digit")
    trace = fig.data[0]
    np.testing.assert_allclose(values(trace.z), w)
    assert trace.zmid == 0 and trace.zmin == -trace.zmax == -1.0  # symmetric: white is 0
    assert "w3" in fig.layout.title.text and "2 × 2" in fig.layout.title.text
    assert "value" in trace.hovertemplate


def test_heatmap_big_is_int8_levels_that_keep_the_colours():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, (784, 128))
    fig = figures.weight_heatmap(w, "w1", rows="input pixel", cols="neuron")
    trace = fig.data[0]
    z = values(trace.z)
    assert z.dtype == np.int8 and z.shape == (784, 128)
    limit = np.abs(w).max()
    # each level is the weight's position on the colour bar, within half a level
    np.testing.assert_allclose(z / 127 * limit, w, atol=limit / 127 / 2 + 1e-12)
    assert trace.zmin == -127 and trace.zmax == 127
    assert "784 × 128" in fig.layout.title.text
    assert trace.colorbar.ticktext[-1].startswith("+")  # the colour bar is labelled in weights


def test_heatmap_of_a_bias_vector_is_one_row():
    fig = figures.weight_heatmap(np.arange(10.0) - 5, "b3")
    assert values(fig.data[0].z).shape == (1, 10)
    assert "shape 10" in fig.layout.title.text
    with pytest.raises(ValueError, match="1-D or 2-D"):
        figures.weight_heatmap(np.zeros((2, 2, 2)), "x")


def test_tile_images_places_each_image():
    images = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    mosaic = figures.tile_images(images, cols=2, gap=1, fill=-1)
    assert mosaic.shape == (5, 5)
    np.testing.assert_array_equal(mosaic[0:2, 3:5], images[1])
    np.testing.assert_array_equal(mosaic[3:5, 0:2], images[2])
    assert mosaic[2, 0] == -1 and mosaic[4, 4] == -1  # gap, unused tile


def test_neuron_grid_shows_each_neuron_as_its_28x28_weights():
    rng = np.random.default_rng(2)
    w1 = rng.normal(size=(784, 10))
    fig = figures.neuron_grid(w1)  # 10 neurons -> 4 columns of 29-px tiles
    z = values(fig.data[0].z).astype(float)
    assert len(fig.data) == 2  # the pictures, then the grey frame lines
    assert z.shape == (3 * 29 - 1, 4 * 29 - 1)
    j = 5  # row 1, column 1 of the grid
    tile = z[29:29 + 28, 29:29 + 28] / 127
    expected = w1[:, j].reshape(28, 28) / np.abs(w1[:, j]).max()  # its own colour scale
    np.testing.assert_allclose(tile, expected, atol=1 / 127)
    with pytest.raises(ValueError, match="784"):
        figures.neuron_grid(np.zeros((100, 3)))


def test_histogram_counts_every_value():
    w = np.random.default_rng(3).normal(size=(50, 40))
    fig = figures.histogram_figure(w, "w2", bins=30)
    assert values(fig.data[0].y).sum() == w.size and len(values(fig.data[0].x)) == 30
    assert figures.histogram_figure(np.zeros(5), "b").data  # constant values still draw


# --- testing --------------------------------------------------------------------------------
def test_digit_and_probability_figures():
    image = np.zeros((28, 28), np.float32)
    image[5:20, 14] = 1
    big = figures.upscale_digit(image, scale=10)
    assert big.shape == (280, 280) and big.dtype == np.uint8
    np.testing.assert_array_equal(big[::10, ::10], image * 255)  # each pixel a 10x10 square
    assert (big[50:60, 140:150] == 255).all()
    with pytest.raises(ValueError, match="28, 28"):
        figures.upscale_digit(np.zeros((10, 10)))
    p = np.full(10, 0.05)
    p[7] = 0.55
    bars = figures.probability_figure(p).data[0]
    np.testing.assert_allclose(values(bars.y).sum(), 100)
    assert bars.marker.color[7] != bars.marker.color[0]  # the answer stands out
    with pytest.raises(ValueError, match="10 values"):
        figures.probability_figure(np.ones(3))


def test_sample_grid_marks_right_and_wrong():
    images = np.zeros((4, 28, 28), np.float32)
    fig = figures.sample_grid_figure(images, [1, 2, 3, 4], [1, 2, 0, 4], cols=2)
    texts = [a.text for a in fig.layout.annotations]
    assert len(texts) == 4 and "✗ 0 (is 3)" in texts[2] and "✓ 1" in texts[0]
    assert fig.layout.annotations[2].font.color == figures.WRONG
    assert fig.layout.annotations[0].font.color == figures.RIGHT
    assert fig.layout.title.text == "3 of 4 right"
    with pytest.raises(ValueError):
        figures.sample_grid_figure(images, [1], [1])


def test_confusion_figure_shows_counts_and_row_shares():
    cm = np.diag(np.arange(1, 11)) + 1  # 1 mistake per cell
    fig = figures.confusion_figure(cm)
    trace = fig.data[0]
    np.testing.assert_array_equal(values(trace.text), cm)
    shares = values(trace.customdata)
    np.testing.assert_allclose(shares.sum(axis=1), 100)
    with pytest.raises(ValueError, match="10 x 10"):
        figures.confusion_figure(np.zeros((3, 3)))


# --- layers and drawing ---------------------------------------------------------------------
@pytest.mark.parametrize("model", [DenseMLP(hidden=(32, 16)), DenseMLP(hidden=(8,)), NotebookNet()])
def test_layer_views_name_every_parameter_once(model):
    named = []
    for view in layer_views(model):
        named += [view.weight] + ([view.bias] if view.bias else [])
        assert view.rows and view.cols and view.title
    assert sorted(named) == sorted(model.params)


def test_digit_from_canvas_explains_missing_ink():
    image, message = digit_from_canvas(None)
    assert image is None and "Draw a digit" in message
    blank = np.zeros((280, 280, 4), np.uint8)
    blank[..., 3] = 255  # an untouched black canvas is opaque black
    image, message = digit_from_canvas(blank)
    assert image is None and "empty" in message
    image, message = digit_from_canvas(np.zeros((5,), np.uint8))
    assert image is None and "could not be read" in message
    stroke = blank.copy()
    stroke[60:220, 130:150, :3] = 255
    image, message = digit_from_canvas(stroke)
    assert message is None and image.shape == (28, 28) and image.max() == 1.0


def test_random_batch_is_distinct_indices():
    idx = random_batch(10_000, 16, seed=0)
    assert len(set(idx.tolist())) == 16 and idx.max() < 10_000
