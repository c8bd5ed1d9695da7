"""NumPy vs Keras: the same network trained by mlp_core and by TensorFlow/Keras, from the
same starting weights; time per epoch, accuracy, and one batch's gradients compared.
TensorFlow is imported only when a comparison runs (in mlp_lab.keras_compare)."""

import plotly.graph_objects as go
import streamlit as st

from mlp_lab.keras_compare import BATCH, EPOCH_OPTIONS, HIDDEN, TRAIN_SIZES, get_jobs
from mlp_lab.session import get_lab, guarded

get_lab()
jobs = get_jobs()

st.title("NumPy vs Keras")
st.caption(
    "**What am I looking at?** The same network (784 → 128 → 64 → 10) trained twice from the "
    "very same random start: once by MLP Lab's own NumPy code, once by TensorFlow/Keras, the "
    "library professionals use. If our maths is right, both learn the same way, and on one "
    "batch of images both compute the same gradients, up to rounding.")
c1, c2, c3 = st.columns([2, 1, 1])
c1.select_slider("Training images", TRAIN_SIZES, value=5000, key="keras_n",
                 format_func=lambda v: f"{v:,}",
                 help="How many MNIST images both train on (the same ones, in batches of "
                      f"{BATCH}). Fewer is quicker.")
c2.select_slider("Epochs", EPOCH_OPTIONS, value=2, key="keras_epochs",
                 help="Passes over those images. Each epoch is timed separately.")
key = (st.session_state["keras_n"], st.session_state["keras_epochs"])
c3.button("Run both", type="primary", disabled=jobs.busy,
          on_click=lambda: jobs.request(*key),
          help="Loads TensorFlow (the first time takes a while) and trains both networks in "
               "the background. One comparison runs at a time on the server; results are "
               "shared, so the next student sees them at once.")


@st.fragment(run_every=1.0 if jobs.busy else None)
@guarded
def results_view(polling: bool) -> None:
    if jobs.busy:
        st.info(f"Training both on {jobs.running[0]:,} images for {jobs.running[1]} epoch(s)… "
                "(loading TensorFlow takes a few seconds the first time)")
    if jobs.error:
        st.error(f"The Keras comparison could not run ({jobs.error}). It needs TensorFlow: "
                 "`pip install tensorflow`.")
    result = jobs.results.get(key)
    if result is None:
        if not jobs.busy:
            st.info("Press **Run both** to train the two side by side.")
    else:
        left, right = st.columns(2)
        for column, side in ((left, result.ours), (right, result.keras)):
            with column, st.container(border=True):
                st.markdown(f"**{side.name}**")
                m1, m2 = st.columns(2)
                m1.metric("Seconds per epoch", f"{sum(side.epoch_seconds) / len(side.epoch_seconds):.2f}",
                          help="Average wall time of one pass over the training images.")
                m2.metric("Validation accuracy", f"{side.val_accuracy[-1]:.1%}",
                          help="Share of 1,000 unseen images answered correctly after training.")
        fig = go.Figure()
        for side, colour in ((result.ours, "#1f3fbf"), (result.keras, "#ff7f0e")):
            fig.add_trace(go.Scatter(x=list(range(1, result.epochs + 1)),
                                     y=[a * 100 for a in side.val_accuracy], name=side.name,
                                     mode="lines+markers", line=dict(color=colour, width=2.5)))
        fig.update_layout(title=dict(text="Accuracy on unseen images after each epoch"), height=300,
                          margin=dict(l=10, r=10, t=50, b=10),
                          xaxis=dict(title=dict(text="epoch"), dtick=1),
                          yaxis=dict(title=dict(text="% right")))
        st.plotly_chart(fig, key="keras_curves")
        st.subheader("The gradients on one batch, number by number")
        st.caption(f"Both start from the same weights and see the same {BATCH} images. Loss: "
                   f"NumPy {result.loss_ours:.6f}, Keras {result.loss_keras:.6f}. The table gives, "
                   "for each weight array, the largest difference between the two gradients; "
                   "float32 rounding alone gives differences around 1e-7 of the gradient's size.")
        st.dataframe([{"array": name, "largest difference": f"{result.grad_max_abs[name]:.2e}",
                       "relative to the largest gradient": f"{result.grad_rel[name]:.2e}"}
                      for name in result.grad_max_abs], hide_index=True)
        st.caption(f"TensorFlow {result.tf_version}, one thread each; network "
                   f"784-{HIDDEN[0]}-{HIDDEN[1]}-10, Adam lr 0.001, batch {BATCH}. Keras shuffles "
                   "the images in its own order, so the curves differ a little.")
    if polling and not jobs.busy:
        st.rerun()


results_view(jobs.busy)
