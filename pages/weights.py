"""Weights: every weight and bias of the current model as colours, refreshed during a run."""

import streamlit as st

from mlp_lab import figures
from mlp_lab.layers import layer_views
from mlp_lab.session import FIGURES, digest, get_lab, guarded, show_chart

REFRESH_SECONDS = 3.0  # modest: a big layer is a few hundred kB per refresh

lab = get_lab()
running = lab.running

st.title("Weights")
st.caption(
    "**What am I looking at?** A network is just lists of numbers called *weights*. Each "
    "picture below shows one layer's weights as colours: **red** = a positive weight (this "
    "input pushes the neuron up), **blue** = negative (pushes it down), **white** = close to 0 "
    "(ignored). Before training they are random noise; watch patterns appear as it learns.")
change = st.toggle(
    "Show the change since the start", key="w_change", persist_state="session",
    help="Instead of the weights themselves, show how much each one has moved since the "
         "network was made (or loaded): where learning happened.")


# Not while the run waits for a trainer: the weights do not change then.
@st.fragment(run_every=REFRESH_SECONDS if running and not lab.waiting else None)
@guarded
def weight_views() -> None:
    snap = lab.snapshot(include_params=True)
    params = snap.params
    if change:
        params = {k: v - lab.initial_params[k] for k, v in params.items()}
    drawn = digest(*(params[name] for name in sorted(params)))  # what the figures show

    def figure(name: str, build):
        """Built once per content for the whole server (FigureCache): every fresh model
        starts from the same weights, and a waiting run's refresh changes nothing."""
        return FIGURES.get(("weights", name, drawn, change), build)

    what = "change since the start" if change else "weights"
    note = f" — refreshed every {REFRESH_SECONDS:g} s while training runs" if lab.running and not lab.waiting else ""
    meaning = " Red: the weight grew; blue: it shrank; white: unchanged." if change else ""
    st.markdown(f"Showing the **{what}** at step **{snap.step:,}**{note}.{meaning}")
    if snap.step == 0 and change:
        st.info("Nothing has changed yet: the network has not been trained. Press Train on the "
                "Train page, then come back.")
    if lab.model.kind == "dense":
        st.header("What each neuron of layer 1 looks at")
        st.caption("Each small square is one neuron of the first layer, drawn as a 28 × 28 "
                   "picture of its 784 weights: one per pixel of the input image. Red areas "
                   "are where ink makes the neuron fire; blue areas where ink stops it. Each "
                   "square has its own colour scale, so faint neurons show up too.")
        show_chart(st, figure("neuron_grid", lambda: figures.neuron_grid(
            params["w1"], what="how its weights changed" if change else "its weights")),
            key="neuron_grid")
    st.header("Every layer")
    for view in layer_views(lab.model):
        st.markdown(f"**{view.title}.** {view.caption}")
        left, right = st.columns([3, 2])
        with left:
            show_chart(st, figure(f"heat_{view.weight}", lambda: figures.weight_heatmap(
                params[view.weight], view.weight, rows=view.rows, cols=view.cols)),
                key=f"heat_{view.weight}")
            if view.bias:
                show_chart(st, figure(f"heat_{view.bias}", lambda: figures.weight_heatmap(
                    params[view.bias], view.bias, rows=view.bias_rows, cols=view.bias_cols)),
                    key=f"heat_{view.bias}")
        with right:
            show_chart(st, figure(f"hist_{view.weight}", lambda: figures.histogram_figure(
                params[view.weight], view.weight)), key=f"hist_{view.weight}")


weight_views()
