"""Every chart of the dashboard, as pure functions: NumPy arrays in, a Plotly figure out.

No Streamlit here and no state: tests call these without a browser, and the pages only
pass in what they read from the lab. Two habits keep the live charts light:

* long series are thinned to at most ``MAX_CURVE_POINTS`` points (the smoothed curve is
  computed on all of them first);
* big weight matrices (more than ``QUANTIZE_ABOVE`` values) are sent as int8 colour levels,
  -127..127 of the colour bar's range, instead of float32: 4x less data to the browser
  each refresh (a 784x256 layer is ~0.2 MB instead of ~0.8 MB), with no visible change.
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go

MAX_CURVE_POINTS = 800  # ~1 per pixel of a wide chart: more only costs the browser time
QUANTIZE_ABOVE = 20_000
DIVERGING = "RdBu_r"  # blue = negative, white = 0, red = positive
RIGHT, WRONG = "#1a7f37", "#cf222e"  # green and red marks on the test images
RAW_COLOUR, SMOOTH_COLOUR, ACC_COLOUR = "rgba(99, 110, 250, 0.35)", "#3b46d1", "#1a7f37"


# --- training curves -----------------------------------------------------------------------
def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average: point i is the mean of the ``window`` values around it
    (fewer near the ends, so the curve neither lags behind nor shrinks). Same length."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if window <= 1 or n == 0:
        return values.copy()
    csum = np.concatenate([[0.0], np.cumsum(values)])  # (n + 1,)
    centre = np.arange(n)
    half = window // 2
    starts = np.maximum(0, centre - half)  # (n,) first index of each window
    ends = np.minimum(n, centre + half + 1)  # (n,) one past its last index
    return (csum[ends] - csum[starts]) / (ends - starts)


def thin(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points out of ``n``, last included."""
    if n <= max_points:
        return np.arange(n)
    idx = np.linspace(0, n - 1, max_points).round().astype(np.int64)
    return np.unique(idx)


def loss_figure(steps, losses, *, log_y: bool = False, x_max: int | None = None,
                height: int = 340, revision: str | int = 0) -> go.Figure:
    """The loss per step: raw (thin, pale: every batch is different, so it jitters) and
    smoothed (bold: the trend). ``x_max`` fixes the x axis, e.g. to where the run will end,
    so the curve grows into the chart instead of the chart rescaling every second.
    ``revision``: while it stays the same, a zoom the user made survives the refreshes."""
    steps = np.asarray(steps, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    fig = go.Figure()
    if len(steps):
        window = int(min(500, max(1, len(losses) // 25)))
        trend = smooth(losses, window)
        keep = thin(len(steps))
        raw_y, trend_y = losses[keep], trend[keep]
        if log_y:  # log axis: zero or negative losses cannot be drawn
            raw_y = np.where(raw_y > 0, raw_y, np.nan)
            trend_y = np.where(trend_y > 0, trend_y, np.nan)
        x = steps[keep].astype(np.int32)  # (<= MAX_CURVE_POINTS,) step numbers
        fig.add_trace(go.Scatter(x=x, y=raw_y.astype(np.float32), mode="lines",
                                 name="loss of each step", line=dict(color=RAW_COLOUR, width=1),
                                 hovertemplate="step %{x}<br>loss %{y:.4f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=x, y=trend_y.astype(np.float32), mode="lines",
                                 name=f"smoothed (mean of {window} steps)",
                                 line=dict(color=SMOOTH_COLOUR, width=2.5),
                                 hovertemplate="step %{x}<br>smoothed %{y:.4f}<extra></extra>"))
    last = float(steps[-1]) if len(steps) else 0.0
    right = max(float(x_max or 0), last, 10.0)
    fig.update_layout(
        title=dict(text="Loss: how wrong the network is (lower is better)"),
        height=height, uirevision=str(revision), margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
        xaxis=dict(title=dict(text="training step"), range=[0, right * 1.02]),
        yaxis=dict(title=dict(text="loss"), type="log" if log_y else "linear",
                   rangemode="tozero" if not log_y else "normal"),
    )
    if not len(steps):
        _empty_note(fig, "No training yet: press Train to draw this curve.")
    return fig


def accuracy_figure(val_steps, val_accuracy, *, x_max: int | None = None,
                    height: int = 260, revision: str | int = 0) -> go.Figure:
    """Validation accuracy: the share of 1,000 held-out images (never trained on) that the
    network gets right, checked every few steps during training."""
    val_steps = np.asarray(val_steps, dtype=np.float64)
    acc = np.asarray(val_accuracy, dtype=np.float64) * 100
    fig = go.Figure()
    if len(val_steps):
        fig.add_trace(go.Scatter(x=val_steps.astype(np.int32), y=acc.astype(np.float32),
                                 mode="lines+markers", name="validation",
                                 line=dict(color=ACC_COLOUR, width=2.5), marker=dict(size=5),
                                 hovertemplate="step %{x}<br>%{y:.1f}% right<extra></extra>"))
    last = float(val_steps[-1]) if len(val_steps) else 0.0
    right = max(float(x_max or 0), last, 10.0)
    fig.update_layout(
        title=dict(text="Validation accuracy: % of unseen images it gets right"),
        height=height, uirevision=str(revision), margin=dict(l=10, r=10, t=50, b=10), showlegend=False,
        xaxis=dict(title=dict(text="training step"), range=[0, right * 1.02]),
        yaxis=dict(title=dict(text="% right"), range=[0, 101]),
    )
    if not len(val_steps):
        _empty_note(fig, "Checked every few steps while training runs.")
    return fig


def class_curves_figure(curves, *, height: int = 380) -> go.Figure:
    """Every student's validation accuracy on one chart: ``curves`` is a list of
    ``(name, steps, accuracies 0-1)``. Names are students' text: HTML-escaped here (Plotly
    reads tags such as <a> in trace names and hover text)."""
    right, traces = 10.0, []
    for name, steps, accuracy in curves:
        if not len(steps):
            continue
        label = html.escape(str(name))
        # Plain dicts, given to the Figure at once: a third of the time of add_trace per
        # student (Plotly validates every property in Python; the page refreshes every 5 s).
        traces.append(dict(type="scatter", x=np.asarray(steps, dtype=np.int32),
                           y=(np.asarray(accuracy, dtype=np.float64) * 100).astype(np.float32),
                           mode="lines+markers", name=label, marker=dict(size=4), line=dict(width=2),
                           hovertemplate=f"{label}<br>step %{{x}}<br>%{{y:.1f}}% right<extra></extra>"))
        right = max(right, float(steps[-1]))
    fig = go.Figure(data=traces)
    fig.update_layout(
        title=dict(text="The class: validation accuracy of every student's model"),
        height=height, margin=dict(l=10, r=10, t=50, b=10), showlegend=True,
        legend=dict(title=dict(text="student")),
        xaxis=dict(title=dict(text="training step"), range=[0, right * 1.02]),
        yaxis=dict(title=dict(text="% right"), range=[0, 101]))
    if not fig.data:
        _empty_note(fig, "Curves appear as students train.")
    return fig


def lr_accuracy_figure(points, *, height: int = 380) -> go.Figure:
    """Learning rate (log axis) against accuracy: ``points`` is a list of ``(name, lr,
    accuracy 0-1, optimizer label)``; one colour per optimizer, so the class sees which
    rates work for which."""
    by_optimizer: dict[str, list] = {}
    for name, lr, accuracy, optimizer in points:
        if accuracy is not None and lr and lr > 0:
            by_optimizer.setdefault(str(optimizer), []).append((html.escape(str(name)), lr, accuracy * 100))
    traces = []
    for optimizer, items in sorted(by_optimizer.items()):
        names, lrs, accs = zip(*items)
        traces.append(dict(type="scatter", x=list(lrs), y=list(accs), mode="markers", name=html.escape(optimizer),
                           text=list(names), marker=dict(size=11, line=dict(width=1, color="white")),
                           hovertemplate="%{text}<br>lr %{x:g}<br>%{y:.1f}% right<extra></extra>"))
    fig = go.Figure(data=traces)
    fig.update_layout(
        title=dict(text="Which learning rates work: accuracy by learning rate"),
        height=height, margin=dict(l=10, r=10, t=50, b=10), showlegend=True,
        legend=dict(title=dict(text="optimizer")),
        xaxis=dict(title=dict(text="learning rate (log scale)"), type="log", range=[-5.2, 0.2]),
        yaxis=dict(title=dict(text="% right (test, else validation)"), range=[0, 101]))
    if not fig.data:
        _empty_note(fig, "A point per student appears after their first validation check.")
    return fig


def _empty_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=14, color="gray"))


# --- weights -------------------------------------------------------------------------------
def symmetric_limit(values: np.ndarray) -> float:
    """The colour range ±limit: the largest |value| (1e-8 for all-zero arrays)."""
    values = np.asarray(values)
    finite = values[np.isfinite(values)]
    return max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-8)


def _colour_levels(values: np.ndarray, limit: float) -> tuple[np.ndarray, float, bool]:
    """(values to send, their colour range, quantized?). Big arrays become int8 levels."""
    if values.size > QUANTIZE_ABOVE:
        levels = np.round(np.clip(values / limit, -1.0, 1.0) * 127).astype(np.int8)
        return levels, 127.0, True
    return values.astype(np.float32), limit, False


def _colourbar(limit: float, quantized: bool, real_limit: float, strip: bool = False) -> dict:
    """The colour bar's ticks: five, or three on a one-row strip (a bias), whose short bar
    had its five labels written over each other."""
    ticks = np.array([-1, 0, 1.0] if strip else [-1, -0.5, 0, 0.5, 1.0])
    if not quantized and not strip:
        return dict(thickness=12)
    return dict(thickness=12, tickvals=(ticks * limit).tolist(),
                ticktext=[f"{t * real_limit:+.3g}" if t else "0" for t in ticks])


def weight_heatmap(w: np.ndarray, name: str, *, rows: str = "", cols: str = "",
                   limit: float | None = None, height: int | None = None) -> go.Figure:
    """A weight (or bias) array as a heatmap, titled with its name and shape, on a diverging
    colour scale centred on 0 (blue negative, white zero, red positive).

    ``w``: (n_rows, n_cols) or (n,) (drawn as one row). ``rows`` / ``cols`` say what the
    rows and columns are (e.g. "input pixel", "neuron"); ``limit`` fixes the colour range.
    """
    w = np.asarray(w, dtype=np.float64)
    shape = w.shape
    if w.ndim == 1:
        w = w[None, :]  # (1, n)
    if w.ndim != 2:
        raise ValueError(f"weights must be 1-D or 2-D, got shape {shape}")
    real_limit = limit or symmetric_limit(w)
    z, zlimit, quantized = _colour_levels(w, real_limit)
    shape_text = " × ".join(str(n) for n in shape)
    row_name, col_name = rows or "row", cols or "column"
    hover = (f"{row_name} %{{y}}, {col_name} %{{x}}<extra></extra>" if quantized else
             f"{row_name} %{{y}}, {col_name} %{{x}}<br>value %{{z:.4f}}<extra></extra>")
    fig = go.Figure(go.Heatmap(z=z, zmin=-zlimit, zmax=zlimit, zmid=0, colorscale=DIVERGING,
                               colorbar=_colourbar(zlimit, quantized, real_limit, strip=w.shape[0] == 1),
                               hovertemplate=hover))
    if height is None:
        height = 160 if w.shape[0] == 1 else int(min(520, max(220, 60 + 2.2 * w.shape[0])))
    # automargin and a standoff: the axis titles sit clear of the tick labels
    fig.update_layout(
        title=dict(text=f"{name} · shape {shape_text}"), height=height,
        margin=dict(l=10, r=10, t=40, b=45 if cols else 10),  # room for the axis title under its ticks
        xaxis=dict(title=dict(text=cols, standoff=6) if cols else None, showgrid=False, automargin=True),
        yaxis=dict(title=dict(text=rows, standoff=6) if rows else None, autorange="reversed", showgrid=False,
                   showticklabels=w.shape[0] > 1, automargin=True),
    )
    return fig


def tile_images(images: np.ndarray, cols: int, gap: int = 1, fill: float = 0.0) -> np.ndarray:
    """(n, h, w) images -> one (rows*(h+gap)-gap, cols*(w+gap)-gap) mosaic, row by row;
    gaps and unused tiles hold ``fill``."""
    images = np.asarray(images)
    n, h, w = images.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), fill, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[i]
    return out


def neuron_grid(w1: np.ndarray, *, cols: int | None = None, height: int = 700,
                what: str = "its weights") -> go.Figure:
    """Every first-layer neuron of a dense MLP as a 28x28 picture of its 784 input weights.

    ``w1``: (784, n_neurons). Each picture is scaled to its own strongest weight, so faint
    neurons stay visible: red pixels push the neuron up when ink is there, blue ones down.
    """
    w1 = np.asarray(w1, dtype=np.float64)
    if w1.ndim != 2 or w1.shape[0] != 784:
        raise ValueError(f"w1 must have shape (784, n_neurons), got {w1.shape}")
    n = w1.shape[1]
    cols = cols or math.ceil(math.sqrt(n))
    tiles = w1.T.reshape(n, 28, 28)  # (n, 28, 28): neuron j's weights as an image
    peak = np.abs(tiles).max(axis=(1, 2), keepdims=True)  # (n, 1, 1)
    tiles = tiles / np.where(peak > 0, peak, 1.0)  # each in [-1, 1]
    mosaic = tile_images(tiles, cols, gap=1, fill=0.0)
    z = np.round(mosaic * 127).astype(np.int8)  # colour levels: see the module docstring
    fig = go.Figure(go.Heatmap(z=z, zmin=-127, zmax=127, zmid=0, colorscale=DIVERGING,
                               showscale=False, hoverinfo="skip"))
    rows = math.ceil(n / cols)
    # grey frame lines between the pictures: one trace of segments separated by None
    # (much faster to build than one layout shape per line)
    xs, ys = [], []
    for c in range(1, cols):
        xs += [c * 29 - 1, c * 29 - 1, None]
        ys += [-0.5, rows * 29 - 1.5, None]
    for r in range(1, rows):
        xs += [-0.5, cols * 29 - 1.5, None]
        ys += [r * 29 - 1, r * 29 - 1, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#9a9a9a", width=1),
                             hoverinfo="skip", showlegend=False))
    fig.update_layout(
        title=dict(text=f"The {n} neurons of layer 1, each as a 28 × 28 picture of {what}"),
        height=height, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(visible=False, scaleanchor="y", constrain="domain"),
        yaxis=dict(visible=False, autorange="reversed", constrain="domain"),
    )
    return fig


def histogram_figure(values: np.ndarray, name: str, *, bins: int = 60,
                     height: int = 220) -> go.Figure:
    """How many weights have each value: binned in NumPy, so the browser gets 60 bars
    instead of every weight."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    fig = go.Figure()
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        centres = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(go.Bar(x=centres, y=counts, width=float(edges[1] - edges[0]),
                             marker=dict(color=centres, colorscale=DIVERGING,
                                         cmin=-max(abs(lo), abs(hi)), cmax=max(abs(lo), abs(hi))),
                             hovertemplate="around %{x:.3g}: %{y} values<extra></extra>"))
    # On two lines: the histogram sits in a narrow column, where one line was cut off.
    fig.update_layout(title=dict(text=f"{name}: how many values<br>of each size"), height=height,
                      margin=dict(l=10, r=10, t=60, b=10), bargap=0, showlegend=False,
                      xaxis=dict(title=dict(text="value")), yaxis=dict(title=dict(text="count")))
    return fig


# --- testing -------------------------------------------------------------------------------
def upscale_digit(image: np.ndarray, scale: int = 10) -> np.ndarray:
    """A (28, 28) image in [0, 1] as a (28*scale, 28*scale) uint8 picture for ``st.image``,
    every pixel a crisp square (no smoothing), so one can count the 28 x 28 pixels."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {image.shape}")
    big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)  # (28*scale, 28*scale)
    return np.round(np.clip(big, 0, 1) * 255).astype(np.uint8)


def probability_figure(probabilities: np.ndarray, *, height: int = 300) -> go.Figure:
    """How sure the network is of each digit (bars sum to 100%); the winner in dark blue."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if p.shape != (10,):
        raise ValueError(f"probabilities must have 10 values, got shape {p.shape}")
    best = int(np.argmax(p))
    colours = [SMOOTH_COLOUR if d == best else "rgba(99, 110, 250, 0.35)" for d in range(10)]
    fig = go.Figure(go.Bar(x=list(range(10)), y=p * 100, marker=dict(color=colours),
                           text=[f"{v:.0f}%" for v in p * 100], textposition="outside",
                           hovertemplate="digit %{x}: %{y:.1f}%<extra></extra>"))
    fig.update_layout(title=dict(text="How sure it is about each digit"), height=height,
                      margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                      xaxis=dict(title=dict(text="digit"), tickmode="linear", dtick=1),
                      yaxis=dict(title=dict(text="%"), range=[0, 115]))
    return fig


def sample_grid_figure(images: np.ndarray, y_true, y_pred, *, cols: int = 4) -> go.Figure:
    """Test images with the network's answer above each: green ✓ right, red ✗ wrong
    (with the true digit). ``images`` (n, 28, 28) in [0, 1]. Four columns: a label such as
    "✗ 3 (is 5)" is wider than a phone's eighth of the screen."""
    images = np.asarray(images, dtype=np.float32)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or not len(images) == len(y_true) == len(y_pred):
        raise ValueError(f"expected (n, 28, 28) images and n labels and predictions, got "
                         f"{images.shape}, {y_true.shape}, {y_pred.shape}")
    n = len(images)
    cols = min(cols, max(n, 1))
    band = 12  # pixel rows above each image for its label
    padded = np.full((n, 28 + band, 28), np.nan, dtype=np.float32)  # NaN = transparent
    padded[:, band:, :] = images
    mosaic = tile_images(padded, cols, gap=3, fill=np.nan)
    fig = go.Figure(go.Heatmap(z=mosaic.astype(np.float32), zmin=0, zmax=1, colorscale="gray",
                               showscale=False, hoverinfo="skip"))
    annotations = []
    for i in range(n):
        r, c = divmod(i, cols)
        right = int(y_pred[i]) == int(y_true[i])
        text = f"✓ {int(y_pred[i])}" if right else f"✗ {int(y_pred[i])} (is {int(y_true[i])})"
        annotations.append(dict(x=c * 31 + 13.5, y=r * (28 + band + 3) + band / 2,
                                text=f"<b>{text}</b>", showarrow=False,
                                font=dict(size=13, color=RIGHT if right else WRONG)))
    rows = max(1, math.ceil(n / cols))
    correct = int(np.sum(y_true == y_pred))
    fig.update_layout(
        title=dict(text=f"{correct} of {n} right"), height=80 + 105 * rows,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(visible=False, scaleanchor="y", constrain="domain"),
        yaxis=dict(visible=False, autorange="reversed", constrain="domain"),
        plot_bgcolor="rgba(0,0,0,0)", annotations=annotations,
    )
    return fig


def confusion_figure(confusion: np.ndarray, *, height: int = 460) -> go.Figure:
    """Row = the true digit, column = the network's answer; the diagonal is right answers.
    Colour is each cell's share of its row, so mistakes stand out even when few."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (10, 10):
        raise ValueError(f"confusion matrix must be 10 x 10, got {cm.shape}")
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)  # (10, 10) row shares
    shown = np.sqrt(share)  # square root: small mistakes get visible colour too
    fig = go.Figure(go.Heatmap(
        z=shown, x=list(range(10)), y=list(range(10)), text=cm, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, showscale=False, customdata=share * 100,
        hovertemplate="true %{y}, answered %{x}: %{text} images (%{customdata:.1f}% of the %{y}s)"
                      "<extra></extra>"))
    fig.update_layout(title=dict(text="Confusion matrix: which digits get mixed up"), height=height,
                      margin=dict(l=10, r=10, t=40, b=10),
                      # Square cells: scaleanchor alone widened the x range to fill the chart
                      # (the answers ran from -7 to 16); constrain="domain" narrows the chart
                      # instead, and both ranges are the ten digits.
                      xaxis=dict(title=dict(text="the network's answer"), tickmode="linear", dtick=1,
                                 side="bottom", range=[-0.5, 9.5], constrain="domain"),
                      yaxis=dict(title=dict(text="true digit"), tickmode="linear", dtick=1,
                                 range=[9.5, -0.5], scaleanchor="x", constrain="domain"))
    return fig


# --- text alternatives ---------------------------------------------------------------------
# One line a screen reader says for each chart (``st.plotly_chart(..., alt=...)``).
def probability_summary(probabilities: np.ndarray) -> str:
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    first, second = (int(d) for d in np.argsort(p)[::-1][:2])
    return (f"Bar chart of how sure the network is of each digit: {first} at {p[first]:.0%}, "
            f"next {second} at {p[second]:.0%}.")


def samples_summary(y_true, y_pred) -> str:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = [f"{int(a)} for a {int(t)}" for t, a in zip(y_true, y_pred) if int(t) != int(a)]
    text = f"{len(y_true)} test images with the network's answers: {len(y_true) - len(wrong)} right"
    return text + (f", {len(wrong)} wrong (it answered {', '.join(wrong)})." if wrong else ".")


def confusion_summary(confusion: np.ndarray) -> str:
    cm = np.asarray(confusion, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    text = (f"Confusion matrix of {int(cm.sum()):,} test images, true digit by the network's answer: "
            f"{int(np.trace(cm)):,} right")
    if off.sum() == 0:
        return text + ", no mix-ups."
    true, answered = np.unravel_index(int(np.argmax(off)), off.shape)
    return text + f"; the most frequent mix-up is {true} read as {answered} ({int(off[true, answered]):,} times)."


def figure_summary(fig: go.Figure) -> str:
    """A generic one-line text alternative: the chart's kind and title, and for curves
    where each ends (the teaching pages' charts, the training curves)."""
    kinds = {"scatter": "Line chart", "bar": "Bar chart", "heatmap": "Heatmap", "histogram": "Histogram"}
    kind = kinds.get(fig.data[0].type, "Chart") if fig.data else "Chart"
    title = fig.layout.title.text or ""
    title = title.replace("<b>", "").replace("</b>", "").replace("<br>", " ")
    ends = []
    for trace in fig.data:
        if trace.type == "scatter" and trace.y is not None and len(trace.y) and trace.name:
            ends.append(f"{trace.name} ends at {_short(trace.y[-1])}")
    text = f"{kind}: {title}" if title else kind
    if fig.data and fig.data[0].type == "scatter" and not ends and all(t.y is None or not len(t.y) for t in fig.data):
        text += " (no data yet)"
    return text + (f"; {'; '.join(ends[:4])}." if ends else ".")


def _short(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.3g}" if math.isfinite(value) else "not a number"


def warm_up() -> None:
    """Build one small figure of each kind once: Plotly loads its validators on first use
    (~0.2 s per kind), which would otherwise delay a student's first answer."""
    rng = np.random.default_rng(0)
    loss_figure([1, 2], [1.0, 0.5])
    accuracy_figure([1], [0.5])
    weight_heatmap(rng.normal(size=(3, 3)), "w")
    histogram_figure(rng.normal(size=10), "w")
    probability_figure(np.full(10, 0.1))
    sample_grid_figure(np.zeros((1, 28, 28)), [0], [0])
    confusion_figure(np.eye(10, dtype=np.int64))
