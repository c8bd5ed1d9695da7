"""What each weight array of a model means, in words, for the Weights page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerView:
    title: str  # "Layer 1: pixels → 256 neurons"
    caption: str  # one plain sentence on what the numbers do
    weight: str  # parameter name, e.g. "w1"
    bias: str | None  # e.g. "b1", or None
    rows: str  # what a row of the weight array is
    cols: str  # what a column is
    bias_rows: str = ""
    bias_cols: str = ""


def layer_views(model) -> list[LayerView]:
    """One view per weight matrix of ``model``: anything with the ``kind`` and ``sizes`` of a
    network (a DenseMLP, a NotebookNet, a recorded ``Replay``)."""
    if model.kind == "notebook":
        return [
            LayerView("Layer 1: the image's rows → 128 hidden rows",
                      "The notebook multiplies the 28 × 28 image as a matrix: each of the 128 rows "
                      "of w1 mixes the image's 28 rows, the same way for every column of the image.",
                      "w1", "b1", rows="hidden unit", cols="image row",
                      bias_rows="hidden unit", bias_cols="image column"),
            LayerView("Layer 2: 128 hidden rows → 10 digit rows",
                      "Each row of w2 turns the 128 hidden rows into the evidence for one digit, "
                      "still one value per image column.",
                      "w2", "b2", rows="digit", cols="hidden unit",
                      bias_rows="digit", bias_cols="image column"),
            LayerView("Layer 3: 28 columns → 1 score per digit",
                      "w3 adds up the 28 columns of evidence, each with its own weight, into one "
                      "score per digit.",
                      "w3", None, rows="image column", cols="output"),
        ]
    sizes = model.sizes  # (784, h1, ..., 10)
    views = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        first, last = i == 1, i == len(sizes) - 1
        source = "pixels" if first else f"{n_in} neurons"
        target = "10 digits" if last else f"{n_out} neurons"
        rows = "input pixel" if first else f"neuron of layer {i - 1}"
        cols = "digit" if last else f"neuron of layer {i}"
        if first:
            caption = ("Every one of the 784 pixels connects to every neuron: one row per pixel, "
                       "one column per neuron.")
        elif last:
            caption = ("Each column collects the evidence for one digit from the neurons before it; "
                       "the biggest total wins.")
        else:
            caption = "Each neuron combines the answers of all the neurons of the layer before."
        views.append(LayerView(f"Layer {i}: {source} → {target}", caption, f"w{i}", f"b{i}",
                               rows=rows, cols=cols, bias_rows="", bias_cols=cols))
    return views
