"""Model: what MLP Lab is, which network to train, and saving / loading it."""

import streamlit as st

from mlp_lab.choices import (ACTIVATION_NAMES, BATCH_SIZES, FORM_KEYS, INIT_LABELS, KINDS,
                             LOSS_LABELS, OPTIMIZER_LABELS, SCHEDULE_LABELS, SHIFTS, ModelChoice)
from mlp_lab.links import follow_new_model
from mlp_lab.session import get_lab

lab = get_lab()


def _kind_changed() -> None:
    """Switching model kind loads that kind's own settings (the notebook's, or the best dense)."""
    st.session_state.update(ModelChoice.preset(st.session_state[FORM_KEYS["kind"]]).form_values())


def _apply() -> None:
    try:
        choice = ModelChoice.from_form(st.session_state, lab.choice)
    except ValueError as exc:
        st.session_state["model_message"] = ("error", str(exc))
        return
    lab.reset(choice)  # keeps the learning rate unless the kind or the optimizer changed
    follow_new_model()
    st.session_state["model_message"] = (
        "success", f"New {lab.model.describe()} with fresh random weights. Go to Train to teach it.")


def _uploaded() -> None:
    key = f"upload_{st.session_state.get('upload_round', 0)}"
    file = st.session_state.get(key)
    if file is None:
        return
    message = lab.load_bytes(file.getvalue(), file.name)
    if message:
        st.session_state["model_message"] = ("error", message)
    else:
        follow_new_model()
        st.session_state["model_message"] = (
            "success", f"Loaded {file.name}: {lab.model.describe()}, trained {lab.trainer.step:,} steps "
                       "so far. You can keep training it, look at its weights or test it.")
    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1  # empty uploader


if FORM_KEYS["kind"] not in st.session_state:  # widget state is dropped when the page is left
    st.session_state.update(lab.choice.form_values())

st.title("MLP Lab")
st.markdown(
    "A **neural network** learns to read handwritten digits from 60,000 examples (the MNIST "
    "dataset). Here you build one, watch it learn, look inside it and test it with your own "
    "handwriting.")
c1, c2, c3 = st.columns(3)
with c1:
    st.page_link("pages/train.py", label="**Train**: watch it learn", icon=":material/show_chart:")
    st.caption("Press Train and see the loss fall and the accuracy rise, live.")
with c2:
    st.page_link("pages/weights.py", label="**Weights**: look inside", icon=":material/grid_on:")
    st.caption("Every weight as a colour: what each neuron has learned to look for.")
with c3:
    st.page_link("pages/testing.py", label="**Test**: try your handwriting", icon=":material/draw:")
    st.caption("Draw a digit and see what the network thinks it is.")

status = lab.status()
st.info(f"**Current model:** {status.description}, {status.n_params:,} weights and biases, "
        f"trained {status.step:,} steps ({lab.choice.describe_training()}).")

message = st.session_state.pop("model_message", None)
if message:
    (st.success if message[0] == "success" else st.error)(message[1])

st.header("Choose a model")
st.caption("Pick a network and how it learns, then press the button to make it with fresh random "
           "weights. This replaces the current model: download it first if you want to keep it.")
left, right = st.columns(2)
with left:
    st.radio("Model", list(KINDS), format_func=KINDS.get, key=FORM_KEYS["kind"], on_change=_kind_changed,
             horizontal=True,
             help="Notebook model: the network from the original notebook, with its settings. "
                  "Dense MLP: a standard modern network where every pixel connects to every "
                  "neuron; it learns much faster and better.")
    dense = st.session_state[FORM_KEYS["kind"]] == "dense"
    st.text_input("Hidden layer sizes", key=FORM_KEYS["hidden"], disabled=not dense,
                  help="How many neurons in each hidden layer, separated by commas. More neurons "
                       "can learn more, but train more slowly. Example: 256, 128.")
    st.selectbox("Activation", ACTIVATION_NAMES, key=FORM_KEYS["activation"], disabled=not dense,
                 help="What each neuron does with its total input. relu: keep positive values, "
                      "turn negative ones into 0 (the usual choice).")
    st.selectbox("Loss", list(LOSS_LABELS), format_func=LOSS_LABELS.get, key=FORM_KEYS["loss"],
                 help="How 'wrongness' is measured. Cross-entropy punishes confident mistakes "
                      "hard and usually learns faster; squared error is what the notebook used.")
with right:
    st.selectbox("Optimizer", list(OPTIMIZER_LABELS), format_func=OPTIMIZER_LABELS.get,
                 key=FORM_KEYS["optimizer"],
                 help="How the weights are nudged after each step. SGD: a small step straight "
                      "downhill. Momentum: keeps some speed from earlier steps. Adam: adapts the "
                      "step size for every weight (usually fastest).")
    st.select_slider("Batch size", BATCH_SIZES, key=FORM_KEYS["batch_size"],
                     help="How many images the network looks at before each nudge. 1 (the "
                          "notebook's) is noisy; 128 gives a steadier direction per step.")
    st.selectbox("Initialisation", list(INIT_LABELS), format_func=INIT_LABELS.get, key=FORM_KEYS["init"],
                 help="How the random starting weights are drawn. He and Xavier are sized so "
                      "signals neither vanish nor explode through the layers.")
    st.selectbox("Learning-rate schedule", list(SCHEDULE_LABELS), format_func=SCHEDULE_LABELS.get,
                 key=FORM_KEYS["schedule"],
                 help="Constant: the same step size all run. Cosine: starts at the learning "
                      "rate you set and slows down smoothly to 0 by the end of each run.")
    st.select_slider("Shift training images (pixels)", SHIFTS, key=FORM_KEYS["shift"],
                     help="Before the network sees a training image, move it at random by up to "
                          "this many pixels. It is still the same digit, so the network learns "
                          "that a digit a little off-centre (like one you draw) is the same digit, "
                          "instead of learning the training pixels by heart. The dense preset "
                          "uses 1: about half a point more test accuracy.")
st.button("Make this model (fresh weights)", type="primary", on_click=_apply,
          help="Builds the network you chose with new random weights. The trained weights "
               "of the current model are thrown away.")

st.header("Save and load")
st.caption("Keep a trained network as a small .npz file, or open one saved before (here or with "
           "`python -m mlp_core train --out model.npz`). Reloading the page or closing the tab "
           "starts over with a fresh model, so download the one you want to keep.")
s1, s2 = st.columns(2)
with s1:
    st.download_button("Download model (.npz)", data=lab.to_bytes, file_name=lab.file_name(),
                       mime="application/octet-stream", on_click="ignore",
                       help="Saves the current weights and settings (also during a run: you "
                            "get the weights as they are at that moment).")
with s2:
    st.file_uploader("Upload a model (.npz)", type=["npz"], on_change=_uploaded,
                     key=f"upload_{st.session_state.get('upload_round', 0)}",
                     help="A model file saved by MLP Lab. It is checked first: if anything is "
                          "wrong with it you get a message and your current model stays.")
