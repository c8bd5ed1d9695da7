"""Model: what MLP Lab is, which network to train, and saving / loading it."""

import time

import streamlit as st

from mlp_lab.choices import (ACTIVATION_NAMES, BATCH_SIZES, FORM_KEYS, INIT_LABELS, KINDS,
                             LOSS_LABELS, OPTIMIZER_LABELS, SCHEDULE_LABELS, SHIFTS, ModelChoice)
from mlp_lab.keeper import get_keeper
from mlp_lab.links import follow_new_model
from mlp_lab.session import get_lab, student_id
from mlp_lab.store import StoreError
from mlp_lab.text import NAME_CHARS, plain, shorten
from mlp_lab import uploads

lab = get_lab()
keeper = get_keeper()
KEEP_NAME = "keep_name"


def _kind_changed() -> None:
    """Switching model kind loads that kind's own settings (the notebook's, or the best dense)."""
    kind = st.session_state[FORM_KEYS["kind"]]
    if kind in KINDS:  # else a hand-made value: the Make button then says so
        st.session_state.update(ModelChoice.preset(kind).form_values())


def _apply() -> None:
    try:
        choice = ModelChoice.from_form(st.session_state, lab.choice)
        lab.reset(choice)  # keeps the learning rate unless the kind or the optimizer changed
    except ValueError as exc:  # (ModelRefused too: no room in the server's memory)
        st.session_state["model_message"] = ("error", str(exc))
        return
    follow_new_model()
    st.session_state["model_message"] = (
        "success", f"New {lab.model.describe()} with fresh random weights. Go to Train to teach it.")


def _uploaded() -> None:
    key = f"upload_{st.session_state.get('upload_round', 0)}"
    file = st.session_state.get(key)
    if file is None:
        return
    message = lab.load_bytes(file.getvalue(), shorten(file.name, NAME_CHARS))  # the browser names it
    uploads.forget(file)  # read: Streamlit need not hold its bytes until the session ends
    if message:
        st.session_state["model_message"] = ("error", message)
    else:
        follow_new_model()
        st.session_state["model_message"] = (
            "success", f"Loaded {lab.source}: {lab.model.describe()}, trained {lab.trainer.step:,} steps "
                       "so far. You can keep training it, look at its weights or test it."
                       + (f" {lab.load_note}" if lab.load_note else ""))
    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1  # empty uploader


def _keep() -> None:
    try:
        name = st.session_state.get(KEEP_NAME, "").strip() or _suggested_name()
        kept = keeper.keep(student_id(), lab, name)
    except StoreError as exc:
        st.session_state["kept_message"] = ("error", str(exc))
        return
    st.session_state["kept_message"] = ("success", f"Kept as “{kept.name}”.")
    st.session_state[KEEP_NAME] = ""  # the next name is suggested afresh


def _suggested_name() -> str:
    return f"{lab.model.describe()}, {lab.trainer.step:,} steps"


def _load_kept(name: str) -> None:
    try:
        keeper.load_kept(student_id(), lab, name)
    except StoreError as exc:
        st.session_state["kept_message"] = ("error", str(exc))
        return
    follow_new_model()
    st.session_state["steps_choice"] = lab.train_steps
    st.session_state["kept_message"] = (
        "success", f"Loaded “{name}”: {lab.model.describe()}, trained {lab.trainer.step:,} steps. "
                   "It is your current model now.")


def _delete_kept(name: str) -> None:
    st.session_state.pop("confirm_delete", None)
    try:
        deleted = keeper.delete_kept(student_id(), name)
    except StoreError as exc:
        st.session_state["kept_message"] = ("error", str(exc))
        return
    st.session_state["kept_message"] = ("success", f"Deleted “{name}”." if deleted else
                                        f"“{name}” was already gone.")


def _when(saved_at: float) -> str:
    stamp = time.localtime(saved_at)
    return time.strftime("today %H:%M" if stamp[:3] == time.localtime()[:3] else "%d %b %Y %H:%M", stamp)


if FORM_KEYS["kind"] not in st.session_state:  # widget state is dropped when the page is left
    st.session_state.update(lab.choice.form_values())

st.title("MLP Lab")
st.markdown(
    "A **neural network** learns to read handwritten digits from 60,000 examples (the MNIST "
    "dataset). Here you build one, watch it learn, look inside it and test it with your own "
    "handwriting.")
# Boxes that wrap onto new rows on a narrow screen: in three columns a tablet cut the links.
intro = st.container(horizontal=True, gap="medium")
c1, c2, c3 = (intro.container(width=260) for _ in range(3))
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
if message:  # it quotes file names, a file's contents or typed text: shown as plain text
    (st.success if message[0] == "success" else st.error)(plain(message[1]))

st.header("Choose a model")
st.caption("Pick a network and how it learns, then press the button to make it with fresh random "
           "weights. This replaces the current model: keep it in My models (below) first if you want "
           "to come back to it.")
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
    st.checkbox("Straighten slanted digits", key=FORM_KEYS["deskew"],
                help="Before the network reads any image (training, test or your drawing), it is "
                     "slanted back so the digit stands upright, the way you would straighten a "
                     "crooked picture. A 1 written in italics then looks like an upright 1, and "
                     "the network has fewer kinds of digit to learn. The dense preset does this.")
    st.checkbox("Even out the pen", key=FORM_KEYS["strokes"],
                help="Before the network reads any image, its edges are made crisp and its lines "
                     "thinner or thicker until they are about as wide as most MNIST digits. A digit "
                     "drawn small with a fat pen, or blurry, then looks like the ones it learned "
                     "from. The dense preset does this.")
    st.checkbox("Teach the 1 with a flag", key=FORM_KEYS["flag_ones"],
                help="Many people write a 1 with a short stroke at the top (a flag), often with a "
                     "line under it (a foot). The people who wrote MNIST's digits seldom did, so a "
                     "network that learned only from them reads such a 1 as a 7. With this on, a "
                     "quarter of the 1s it trains on get a flag drawn in first, and some a foot. "
                     "The dense preset does this.")
    st.checkbox("Distort training images", key=FORM_KEYS["distort"],
                help="Half of the training images the network sees are changed a little at random "
                     "first: turned, made bigger or smaller, slanted, bent like rubber, drawn with "
                     "a thicker or thinner pen. They are still the same digits, so the network "
                     "learns that a digit drawn a bit differently is the same digit. That pays off "
                     "only in long runs: after 10,000 steps it gets more of MNIST's test images "
                     "right (we measured 99.2 % instead of 99.0 %). In a short run (2,000 steps) "
                     "the network has too little time to learn from the harder images and reads "
                     "drawings a little worse, so it is off at first.")
st.button("Make this model (fresh weights)", type="primary", on_click=_apply,
          help="Builds the network you chose with new random weights. The trained weights "
               "of the current model are thrown away (keep them in My models first).")

st.header("My models")
st.caption("Your current model is saved on this server as you work: reloading the page, a dropped "
           "connection or a restart of the server bring it back in this browser. To come back to "
           "a model later, keep it under a name; to take it elsewhere, download it.")
message = st.session_state.pop("kept_message", None)
if message:  # it quotes the name a student typed: shown as plain text
    (st.success if message[0] == "success" else st.error)(plain(message[1]))
k1, k2 = st.columns([2, 1], vertical_alignment="bottom")  # the button's words fit on a tablet
k1.text_input("Name", key=KEEP_NAME, max_chars=80, placeholder=_suggested_name(),
              help="A name to find this model by (left empty: the one shown). Keeping a second "
                   "model under the same name replaces the first.")
k2.button("Keep this model", on_click=_keep, width="stretch",
          help="Saves a copy of the current model (its weights, settings, steps and curves) "
               "under this name, in this browser's list.")
try:
    kept_models = keeper.kept(student_id())
except StoreError as exc:
    kept_models = []
    st.warning(str(exc))
if kept_models:
    st.dataframe(
        [{"Name": m.name, "Network": m.description, "Steps": m.steps,
          "Test accuracy": "–" if m.test_accuracy is None else f"{m.test_accuracy:.1%}",
          "Kept": _when(m.saved_at)} for m in kept_models],
        hide_index=True, width="stretch",
        column_config={"Steps": st.column_config.NumberColumn(format="localized")})
    names = [m.name for m in kept_models]
    chosen = st.selectbox("Kept model", names, key="kept_choice",
                          help="Choose one of your kept models, then load, download or delete it.")
    chosen = chosen if chosen in names else names[0]  # a hand-made value is not one of them
    shown = plain(chosen, NAME_CHARS)  # the name as Markdown shows it, literally
    m1, m2, m3, _ = st.columns([1, 1, 1, 3])
    m1.button("Load", on_click=_load_kept, args=(chosen,), width="stretch",
              help="Makes this kept model your current model (with its steps and curves). The "
                   "current model is replaced: keep it first if you want to come back to it.")
    try:
        kept_file = keeper.kept_bytes(student_id(), chosen)
    except StoreError as exc:
        kept_file = None
        st.warning(str(exc))
    m2.download_button("Download", data=kept_file or b"", disabled=kept_file is None,
                       file_name=f"{chosen}.npz".replace("/", "-"), mime="application/octet-stream",
                       on_click="ignore", width="stretch", help="This kept model as an .npz file.")
    if st.session_state.get("confirm_delete") == chosen:
        m3.button("Yes, delete", type="primary", on_click=_delete_kept, args=(chosen,),
                  width="stretch", help=f"Deletes “{shown}” for good.")
        st.caption(f"Delete “{shown}” for good? Press **Yes, delete** to confirm.")
    else:
        m3.button("Delete…", on_click=lambda: st.session_state.update(confirm_delete=chosen),
                  width="stretch", help="Deletes this kept model (you are asked to confirm).")
else:
    st.caption("No kept models yet.")

st.subheader("Files")
st.caption("A model as a small .npz file: to keep elsewhere, or open one saved before (here or "
           "with `python -m mlp_core train --out model.npz`).")
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
