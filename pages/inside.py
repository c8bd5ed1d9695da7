"""Inside the network: one training step taken apart. For one batch, the weights, the
gradients backpropagation computed for them, and the update the optimizer applied; the
equations with the shapes of the current model."""

import numpy as np
import streamlit as st

from mlp_core.explain import one_step
from mlp_core.optimizers import make_optimizer
from mlp_lab import teaching_figures as tf
from mlp_lab.backprop import OPTIMIZER_UPDATE, equations
from mlp_lab.layers import layer_views
from mlp_lab.session import get_lab, guarded, show_chart

lab = get_lab()
data = lab.data
MAX_BATCH = 64  # one batch for the picture: bigger only costs time


def _new_batch() -> None:
    st.session_state["inside_seed"] = st.session_state.get("inside_seed", 0) + 1


st.title("Inside the network")
st.caption(
    "**What am I looking at?** One training step, taken apart. The network looks at a small "
    "batch of images, measures how wrong it is (the loss), and **backpropagation** works out, "
    "for every weight, which way and how strongly to move it to be less wrong: that is the "
    "*gradient*. The optimizer then moves the weights a little: the *update*. Each row shows "
    "a layer's weights, their gradient and the update side by side (red +, blue −, white 0).")


@st.fragment
@guarded
def step_view() -> None:
    batch = min(lab.choice.batch_size, MAX_BATCH)
    rng = np.random.default_rng(st.session_state.get("inside_seed", 0))
    idx = rng.choice(len(data.y_train), size=batch, replace=False)
    xb, yb = data.x_train[idx], data.y_train[idx]
    model = lab.trainer.model_copy()
    if lab.running:  # the real optimizer is changing under us: use a fresh one like it
        optimizer = make_optimizer(lab.choice.optimizer, lab.lr)
        st.caption("Training is running: this step uses the weights as they are right now and a "
                   "fresh optimizer (its memory of earlier steps is not copied during a run).")
    else:  # one_step copies it: the lab's optimizer is not touched
        optimizer = lab.trainer.optimizer
    step = one_step(model, optimizer, xb, yb, lr=lab.lr)

    c1, c2, c3 = st.columns([3, 2, 2])
    c1.metric("Images in this batch", batch,
              help="The model's batch size (at most 64 here). The gradient is the average over them.")
    c2.metric("Loss on this batch", f"{step['loss']:.4f}",
              help="How wrong the network is on these images before the step: 0 would be perfect.")
    c3.button("Another batch", on_click=_new_batch,
              help="Pick other random training images and take the step again from the same weights.")
    labels = " ".join(str(int(y)) for y in yb[:16])
    st.image(np.concatenate([img for img in xb[:16]], axis=1), clamp=True,
             caption=f"The first {min(16, batch)} images of the batch; labels {labels}",
             alt=f"The first {min(16, batch)} handwritten digits of the batch, in a row: {labels}")

    eq = equations(model, batch)
    with st.expander("The equations, with the shapes of this model", expanded=True):
        st.markdown("**Forward**: the images go through the layers.")
        for line in eq["forward"]:
            st.latex(line)
        st.markdown("**Loss**: one number for how wrong the answers are.")
        st.latex(eq["loss"][0])
        st.markdown("**Backward**: the chain rule, from the loss back to every weight.")
        for line in eq["backward"]:
            st.latex(line)
        st.markdown(f"**Update** ({lab.choice.optimizer}, learning rate η = {lab.lr:g}):")
        st.latex(OPTIMIZER_UPDATE[lab.choice.optimizer])

    for view in layer_views(model)[:3]:
        name = view.weight
        w, g, u = step["weights"][name], step["grads"][name], step["update"][name]
        st.header(view.title)
        ratio = np.abs(u).mean() / max(np.abs(w).mean(), 1e-12)
        st.caption(f"{view.caption} Shape {' × '.join(map(str, w.shape))}; this step moved the "
                   f"weights by {ratio:.2%} of their typical size.")
        cols = st.columns(3)
        # Short titles: three charts side by side leave each a third of the page.
        for column, values, title in ((cols[0], w, f"{name}: weights"),
                                      (cols[1], g, f"∂L/∂{name}: gradient"),
                                      (cols[2], u, f"{name}: update")):
            show_chart(column, tf.gradient_heatmap(values, title), key=f"inside_{title}")
    st.caption("Why the gradient and the update look alike for SGD (update = −η × gradient) but "
               "not for Adam: Adam divides each weight's step by the typical size of its recent "
               "gradients, so small, steady gradients get steps as big as large ones.")


step_view()
