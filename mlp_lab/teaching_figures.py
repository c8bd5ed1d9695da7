"""The teaching pages' charts and pictures, as pure functions (arrays in, figure or image out).

Like ``mlp_lab.figures``: no Streamlit, no state, so tests call them without a browser.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .figures import DIVERGING, smooth, thin
from .keras_compare import GRADIENT_SAMPLE

# One colour per rung of the ladder, from Okabe and Ito's palette for colour-blind readers
# (the earlier red, olive and green looked alike to a red-green colour-blind student), and one
# line style each, so the lines differ without colour too: the notebook dotted vermilion,
# the modern network solid blue.
RUNG_COLOURS = {"notebook": "#D55E00", "loss": "#E69F00", "init": "#CC79A7", "adam": "#009E73",
                "batch": "#56B4E9", "dense": "#0072B2", "notebook_rerun": "#000000"}
RUNG_DASHES = {"notebook": "dot", "loss": "dash", "init": "dashdot", "adam": "longdash",
               "batch": "longdashdot", "dense": "solid", "notebook_rerun": "solid"}


# NumPy vs Keras: ours blue, Keras orange, on every chart of that page.
OURS_COLOUR, KERAS_COLOUR = "#1f3fbf", "#ff7f0e"


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title), height=height, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.01),
                      xaxis=dict(title=dict(text=x_title)), yaxis=dict(title=dict(text=y_title)))
    return fig


def ladder_accuracy_figure(curves, *, height: int = 380) -> go.Figure:
    """Validation accuracy against the step, one line per network, overlaid.

    ``curves``: list of ``(key, label, steps, accuracy)`` with accuracy in [0, 1]."""
    fig = go.Figure()
    for key, label, steps, accuracy in curves:
        steps = np.asarray(steps, dtype=np.int64)
        acc = np.asarray(accuracy, dtype=np.float64) * 100
        fig.add_trace(go.Scatter(x=np.concatenate([[0], steps]), y=np.concatenate([[10.0], acc]),
                                 mode="lines+markers", name=label, marker=dict(size=4),
                                 line=dict(color=RUNG_COLOURS.get(key), dash=RUNG_DASHES.get(key), width=2.5),
                                 hovertemplate=f"{label}<br>step %{{x}}: %{{y:.1f}}% right<extra></extra>"))
    fig = _layout(fig, "Accuracy on unseen images (higher is better)", "training step", "% right", height)
    fig.update_yaxes(range=[0, 101])
    fig.add_hline(y=10, line=dict(color="gray", dash="dot", width=1),
                  annotation_text="chance: 10 %", annotation_position="bottom right")
    return fig


def ladder_loss_figure(curves, *, height: int = 340) -> go.Figure:
    """The smoothed training loss of each network, overlaid, on a log axis.

    ``curves``: list of ``(key, label, steps, losses)``."""
    fig = go.Figure()
    for key, label, steps, losses in curves:
        steps = np.asarray(steps, dtype=np.float64)
        losses = np.asarray(losses, dtype=np.float64)
        if not len(steps):
            continue
        trend = smooth(losses, int(min(200, max(1, len(losses) // 20))))
        keep = thin(len(steps), 400)
        y = np.where(trend[keep] > 0, trend[keep], np.nan)
        fig.add_trace(go.Scatter(x=steps[keep].astype(np.int32), y=y.astype(np.float32),
                                 mode="lines", name=label,
                                 line=dict(color=RUNG_COLOURS.get(key), dash=RUNG_DASHES.get(key), width=2.5),
                                 hovertemplate=f"{label}<br>step %{{x}}: loss %{{y:.3f}}<extra></extra>"))
    fig = _layout(fig, "Loss during training (smoothed; log scale)", "training step", "loss", height)
    ticks = [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


def ladder_bar_figure(labels, accuracies, keys, *, height: int = 320) -> go.Figure:
    """Test accuracy of each rung as a bar: what each one-change step bought."""
    acc = np.asarray(accuracies, dtype=np.float64) * 100
    fig = go.Figure(go.Bar(x=list(labels), y=acc, text=[f"{a:.1f}%" for a in acc],
                           textposition="outside",
                           marker=dict(color=[RUNG_COLOURS.get(k, "#888") for k in keys]),
                           hovertemplate="%{x}: %{y:.1f}% of the test images right<extra></extra>"))
    fig = _layout(fig, "Test accuracy after the same number of steps", "", "% right", height)
    fig.update_layout(showlegend=False)
    fig.update_yaxes(range=[0, 110])
    return fig


# --- pictures for "Why this answer" -----------------------------------------------------------
def upscale(image: np.ndarray, scale: int = 8) -> np.ndarray:
    """(h, w) or (h, w, 3) -> every pixel a ``scale`` x ``scale`` square (no smoothing)."""
    return np.repeat(np.repeat(np.asarray(image), scale, axis=0), scale, axis=1)


def saliency_overlay(image: np.ndarray, heat: np.ndarray, scale: int = 8) -> np.ndarray:
    """The 28x28 digit in grey with ``heat`` painted over it: red where a pixel pushed the
    answer up, blue where it pushed it down, the stronger the more opaque.

    ``image``, ``heat``: (28, 28). Returns (28*scale, 28*scale, 3) uint8 for ``st.image``."""
    image = np.asarray(image, dtype=np.float64)
    heat = np.asarray(heat, dtype=np.float64)
    if image.shape != (28, 28) or heat.shape != (28, 28):
        raise ValueError(f"image and heat must be (28, 28), got {image.shape} and {heat.shape}")
    grey = 0.15 + 0.45 * np.clip(image, 0, 1)  # (28, 28): the digit, dimmed so colours show
    rgb = np.repeat(grey[:, :, None], 3, axis=2)  # (28, 28, 3)
    peak = np.abs(heat).max()
    strength = np.abs(heat) / peak if peak > 0 else np.zeros_like(heat)  # (28, 28) in [0, 1]
    alpha = np.clip(strength, 0, 1)[:, :, None] ** 0.7  # faint pixels still get some colour
    colour = np.where((heat >= 0)[:, :, None], np.array([0.86, 0.12, 0.12]),
                      np.array([0.15, 0.35, 0.95]))  # (28, 28, 3)
    out = (1 - alpha) * rgb + alpha * colour
    return upscale(np.round(out * 255).astype(np.uint8), scale)


def grey_picture(image: np.ndarray, scale: int = 8) -> np.ndarray:
    """A (28, 28) image in [0, 1] as a crisp uint8 picture for ``st.image``."""
    image = np.asarray(image, dtype=np.float64)
    return upscale(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), scale)


def activation_figure(name: str, values: np.ndarray, *, title: str = "",
                      height: int | None = None) -> go.Figure:
    """One layer's activations: a heatmap for a matrix (the notebook's layers), bars for a
    vector (the dense MLP's). Dark = 0 (the neuron is silent), bright = it fires strongly."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        fig = go.Figure(go.Heatmap(z=values.astype(np.float32), colorscale="Viridis", zmin=0,
                                   colorbar=dict(thickness=12),
                                   hovertemplate="row %{y}, column %{x}: %{z:.3f}<extra></extra>"))
        fig.update_yaxes(autorange="reversed")
        height = height or int(min(420, max(200, 80 + 2.4 * values.shape[0])))
    elif values.ndim == 1:
        active = values > 0
        fig = go.Figure(go.Bar(x=np.arange(len(values)), y=values.astype(np.float32),
                               marker=dict(color=np.where(active, "#1f3fbf", "#bbbbbb").tolist()),
                               hovertemplate="neuron %{x}: %{y:.3f}<extra></extra>"))
        fig.update_layout(bargap=0.05)
        if len(values) == 10:  # the output: one bar per digit
            fig.update_xaxes(tickmode="linear", dtick=1, title=dict(text="digit"))
        height = height or 220
    else:
        raise ValueError(f"activations must be 1-D or 2-D, got shape {values.shape}")
    shape = " × ".join(map(str, values.shape))
    fig.update_layout(title=dict(text=title or f"{name} · shape {shape}"), height=height,
                      margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def gradient_heatmap(values: np.ndarray, title: str, *, height: int | None = None) -> go.Figure:
    """A gradient or update array on the weights' diverging scale (blue -, white 0, red +)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[None, :]
    limit = max(float(np.abs(values).max()), 1e-12)
    if values.size > 20_000:  # big layers: int8 colour levels, as mlp_lab.figures does
        z, zl = np.round(values / limit * 127).astype(np.int8), 127.0
    else:
        z, zl = values.astype(np.float32), limit
    fig = go.Figure(go.Heatmap(z=z, zmin=-zl, zmax=zl, zmid=0, colorscale=DIVERGING,
                               showscale=False, hoverinfo="skip"))
    height = height or int(min(360, max(160, 60 + 1.6 * values.shape[0])))
    fig.update_layout(title=dict(text=title), height=height, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(autorange="reversed"))
    return fig


# --- NumPy vs Keras ---------------------------------------------------------------------------
def keras_loss_figure(result) -> go.Figure:
    fig = go.Figure()
    for side, colour in ((result.ours, OURS_COLOUR), (result.keras, KERAS_COLOUR)):
        fig.add_trace(go.Scatter(x=side.images_seen, y=side.losses, name=side.name, mode="lines",
                                 line=dict(color=colour, width=2), opacity=0.85))
    fig.update_layout(title=dict(text="Loss on each batch while training (lower is better)"),
                      height=330, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.25),
                      xaxis=dict(title=dict(text="images seen")),
                      yaxis=dict(title=dict(text="loss"), rangemode="tozero"))
    return fig


def keras_time_figure(result) -> go.Figure:
    epochs = [f"epoch {e}" for e in range(1, result.epochs + 1)]
    fig = go.Figure()
    for side, colour in ((result.ours, OURS_COLOUR), (result.keras, KERAS_COLOUR)):
        fig.add_trace(go.Bar(x=epochs, y=side.epoch_seconds, name=side.name, marker_color=colour,
                             text=[f"{s:.2f} s" for s in side.epoch_seconds],
                             textposition="outside"))
    top = max(result.ours.epoch_seconds + result.keras.epoch_seconds)
    fig.update_layout(title=dict(text="Seconds for each epoch (shorter is faster)"), height=330,
                      barmode="group", margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.25),
                      yaxis=dict(title=dict(text="seconds"), range=[0, top * 1.25]))
    return fig


def keras_gradient_figure(result) -> go.Figure:
    ours, keras = result.grad_sample_ours, result.grad_sample_keras
    sample = GRADIENT_SAMPLE
    low, high = min(ours + keras), max(ours + keras)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="exactly equal",
                             line=dict(color="#999999", dash="dash")))
    fig.add_trace(go.Scatter(x=ours, y=keras, mode="markers", name=f"one number of ∂L/∂{sample}",
                             marker=dict(color=OURS_COLOUR, size=5, opacity=0.6)))
    fig.update_layout(title=dict(text=f"The {len(ours)} gradients of {sample}: "
                                      "NumPy's (across) vs Keras' (up)"),
                      height=360, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.2),
                      xaxis=dict(title=dict(text="NumPy's gradient")),
                      yaxis=dict(title=dict(text="Keras' gradient")))
    return fig
