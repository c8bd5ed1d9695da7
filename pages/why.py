"""Why this answer: your drawing as the network sees it with and without MNIST-style
preprocessing, which pixels decided the answer, and what each hidden layer computed."""

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mlp_core.augment import examples
from mlp_core.explain import hidden_activations, naive_resize, occlusion, saliency
from mlp_lab import teaching_figures as tf
from mlp_lab.drawing import CANVAS_SIZE, STROKE_WIDTH, canvas_pixels, digit_from_canvas
from mlp_lab.choices import offered
from mlp_lab.session import canvas_failed, canvas_key, get_lab, guarded, show_chart

lab = get_lab()
METHODS = {"gradient": "Gradient × input", "occlusion": "Occlusion (hide a square)"}


def _clear() -> None:
    st.session_state["why_round"] = st.session_state.get("why_round", 0) + 1


st.title("Why this answer")
st.caption(
    "**What am I looking at?** Draw a digit. **A/B** shows two ways of shrinking your drawing "
    "to the 28 × 28 pixels the network reads: squeezing the whole box (A), or cutting out the "
    "digit, scaling it and centring it like the MNIST images it learned from (B). **Why** "
    "colours the pixels that made the network pick its answer, and **Inside** shows what each "
    "layer of neurons computed.")
status = lab.status()
if status.untrained:
    st.warning("This network has not been trained yet, so its answers are random. Train it "
               "first (Train page, or a lesson), then come back.")


@st.fragment
@guarded
def why_view() -> None:
    # The canvas keeps its width and the A/B pictures wrap under it on a narrow screen (a
    # tablet, a phone): columns would squeeze the canvas and cut it.
    row = st.container(horizontal=True, gap="large")
    draw, ab = row.container(width=CANVAS_SIZE + 10), row.container(width=480)
    with draw:
        st.header("Draw a digit")
        key, cleared = canvas_key("why_canvas", "why_round")  # see pages/testing.py
        try:
            st_canvas(stroke_width=STROKE_WIDTH, stroke_color="#FFFFFF",
                      background_color="#000000", height=CANVAS_SIZE, width=CANVAS_SIZE,
                      drawing_mode="freedraw", return_image_data=True, key=key)
        except Exception as exc:  # noqa: BLE001 (its value comes from the network)
            cleared = canvas_failed("why_canvas", "why_round", exc)
        st.button("Clear", key="why_clear", on_click=_clear,
                  help="Wipe the canvas to draw another digit.")
        st.caption("The canvas takes a finger, a pen or a mouse, not the keyboard.")
    # The browser's message, read by the checked parser (size caps before decoding).
    pixels, problem = (None, cleared) if cleared else canvas_pixels(st.session_state.get(key))
    centred, problem = (None, problem) if problem else digit_from_canvas(pixels)
    naive = naive_resize(np.asarray(pixels)) if centred is not None else None
    with ab:
        st.header("A/B: two ways to make it 28 × 28")
        if centred is None or naive is None:
            st.info(problem or "The canvas is empty: draw a digit first.")
            return
        model = lab.trainer.model_copy()  # the weights as they are now (also during a run)
        probs = model.predict_proba(np.stack([naive, centred]))  # (2, 10)
        pair = st.container(horizontal=True, gap="small")
        a, b = pair.container(width=220), pair.container(width=220)
        for column, label, image, p, note in (
                (a, "A · Just shrunk", naive, probs[0],
                 "The whole 280 × 280 box averaged down to 28 × 28: a small or off-centre digit "
                 "stays small and off-centre."),
                (b, "B · MNIST-style", centred, probs[1],
                 "The digit cut out, scaled to fit 20 × 20 and centred by its weight, as MNIST's "
                 "images were made. This is what the Test page uses.")):
            with column:
                digit = int(np.argmax(p))
                st.image(tf.grey_picture(image, 7), caption=label, width=196,
                         alt=f"{label}: your drawing as the 28 × 28 image the network reads")
                st.metric(f"{label}: answer", digit, f"{p[digit]:.0%} sure", delta_color="off", delta_arrow="off",
                          help="The digit the network reads from this version of your drawing, "
                               "and how sure it is.")
                st.caption(note)
    probabilities = probs[1]
    seen = model.prepare(centred[None])[0]  # (28, 28) what the network reads: B, prepared as it prepares
    distortions_row(seen)
    st.header("Why: which pixels decided it")
    c1, c2 = st.columns(2)
    answer = int(np.argmax(probabilities))
    target = c1.selectbox("Explain the score of digit", list(range(10)), index=answer,
                          key="why_digit",
                          format_func=lambda d: f"{d} (its answer)" if d == answer else str(d),
                          help="Which digit's score to explain. Pick another digit to see which "
                               "pixels argue for it, or against it.")
    target = offered(target, range(10), answer)  # a hand-made value is none of the ten
    method = c2.radio("Method", list(METHODS), format_func=METHODS.get, key="why_method",
                      horizontal=True,
                      help="Gradient × input: how much each inked pixel pushes the score, "
                           "computed by backpropagation down to the pixels. Occlusion: black out "
                           "a small square at every position and see how much the network's "
                           "certainty drops.")
    method = offered(method, tuple(METHODS), "gradient")
    heat = saliency(model, seen, target) if method == "gradient" else occlusion(model, seen, target)
    left, right = st.columns([1, 2])
    with left:
        st.image(tf.saliency_overlay(seen, heat, 8), width=224,
                 caption=f"Red: pushed towards {target}; blue: pushed away",
                 alt=f"Your digit with the pixels that pushed the score of {target} up in red, "
                     "down in blue")
    with right:
        st.markdown(
            f"The network read **{answer}** ({probabilities[answer]:.0%} sure). The picture shows "
            f"what decided the score of **{target}**: **red** pixels made it more likely, "
            "**blue** ones less likely; grey ones did not matter much. If the red is on strokes "
            "you did not mean to draw, that is what fooled it.")
        share = float(heat[heat > 0].sum() / max(np.abs(heat).sum(), 1e-12))
        st.caption(f"{share:.0%} of the colour is red (for {target}), {1 - share:.0%} blue (against).")
    st.header("Inside: what each layer computed")
    st.caption("Each layer's neurons, for your digit. Bright or tall: the neuron fires strongly; "
               "dark, grey or flat: it stays silent (0). The last chart is the answer.")
    for name, values in hidden_activations(model, seen):
        if name == "output":
            title = "Output: how sure it is of each digit, 0-9"
        elif values.ndim == 2:
            title = (f"Layer {name[1:]} ({name}, {values.shape[0]} × {values.shape[1]}): one row per "
                     "hidden row, one column per column of your image")
        else:
            active = int((values > 0).sum())
            title = f"Layer {name[1:]} ({name}): {active} of {len(values)} neurons fire"
        show_chart(st, tf.activation_figure(name, values, title=title), key=f"act_{name}")


def distortions_row(image: np.ndarray) -> None:
    """Your digit under each distortion training can use (mlp_core.augment), small, in a row."""
    st.header("Your digit, distorted as in training")
    st.caption("With **Distort training images** on (Model page), the network trains on digits "
               "changed like these: it learns that a digit turned, resized, slanted, wobbly or drawn "
               "with another pen is still the same digit, so it reads drawings like yours better.")
    row = st.container(horizontal=True, gap="small")
    names = {"turned": "Turned", "bigger": "Bigger", "smaller": "Smaller", "slanted": "Slanted",
             "bent": "Bent (elastic)", "thicker": "Thicker pen", "thinner": "Thinner pen"}
    for name, picture in examples(image).items():
        with row.container(width=96):
            st.image(tf.grey_picture(picture, 3), caption=names[name], width=84,
                     alt=f"Your digit {names[name].lower()}, as a training image could be")


why_view()
