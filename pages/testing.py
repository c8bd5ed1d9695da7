"""Test: draw a digit and see the network's answer; random test images; test accuracy."""

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mlp_lab import figures
from mlp_lab.drawing import CANVAS_SIZE, MISREAD_HINT, STROKE_WIDTH, digit_from_canvas_state, random_batch
from mlp_lab.session import FIGURES, canvas_failed, canvas_key, digest, get_lab, guarded

lab = get_lab()
data = lab.data


def _clear() -> None:
    st.session_state["canvas_round"] = st.session_state.get("canvas_round", 0) + 1  # new, empty canvas


def _new_batch() -> None:
    st.session_state["test_batch"] = random_batch(len(data.y_test))


def _measure() -> None:
    lab.evaluate_test()


st.title("Test")
st.caption(
    "**What am I looking at?** Draw a digit and the network guesses which one it is; the bars "
    "show how sure it is. The third picture is what the network actually receives: your drawing "
    "shrunk to 28 × 28 pixels and centred, like the images it learned from (and, if the model "
    "straightens digits or evens out the pen, after that too).")
status = lab.status()
if status.untrained:
    st.warning("This network has not been trained yet, so its answers are random guesses. "
               "Train it on the Train page first.")
elif status.status == "diverged" and not status.running:
    st.warning("The last training run diverged; the weights were rolled back to the last good "
               "ones. See the Train page for what to try.")
if status.running:
    st.caption("Training is running: the answers use the weights as they are right now.")


st.header("Your own digit")


@st.fragment
@guarded
def draw_and_predict() -> None:
    """Only this part reruns after a stroke, so the answer comes back quickly."""
    # Three boxes of fixed width that wrap onto new rows when the page is narrow (a tablet,
    # a phone, the sidebar open): side by side on a laptop, stacked below ~900 px, so the
    # canvas is never cut and nothing covers the answer. The answer comes right after the
    # canvas, so on a phone it is under the finger that drew.
    row = st.container(horizontal=True, gap="small")
    draw, answer, seen = (row.container(width=CANVAS_SIZE + 10), row.container(width=300),
                          row.container(width=CANVAS_SIZE + 10))
    with draw:
        st.subheader("1. Draw a digit")
        st.caption("With your finger or the mouse, draw one digit, big, in the black box.")
        # A state no canvas sends (a hand-made message) never reaches the component: a
        # fresh canvas replaces it, and the page says so.
        key, cleared = canvas_key("canvas", "canvas_round")
        try:
            st_canvas(stroke_width=STROKE_WIDTH, stroke_color="#FFFFFF",
                      background_color="#000000", height=CANVAS_SIZE, width=CANVAS_SIZE,
                      drawing_mode="freedraw", return_image_data=True, key=key)
        except Exception as exc:  # noqa: BLE001 (its value comes from the network)
            cleared = canvas_failed("canvas", "canvas_round", exc)
        st.button("Clear", on_click=_clear, help="Wipe the canvas to draw another digit.")
        st.caption("The canvas takes a finger, a pen or a mouse, not the keyboard.")
    # The component's state as the browser sent it, parsed by our own checked reader
    # (size caps before decoding; anything malformed becomes a message, never a traceback).
    image, problem = (None, cleared) if cleared else digit_from_canvas_state(st.session_state.get(key))
    with answer:
        st.subheader("2. Its answer")
        if image is None:
            st.metric("Prediction", "–", help="The digit the network thinks you drew.")
        else:
            probabilities = lab.predict_proba(image)[0]  # (10,)
            digit = int(np.argmax(probabilities))
            st.metric("Prediction", digit, help="The digit the network thinks you drew.")
            st.caption(f"{probabilities[digit]:.0%} sure.")
            st.plotly_chart(figures.probability_figure(probabilities), key="probabilities",
                            alt=figures.probability_summary(probabilities))
            st.caption(MISREAD_HINT)
    with seen:
        st.subheader("3. What the network sees")
        if image is None:
            st.info(problem)
        else:
            st.image(figures.upscale_digit(lab.network_input(image)), width=CANVAS_SIZE,
                     caption=lab.network_input_caption(),
                     alt="Your drawing as the 28 × 28 image the network receives, shown 10 times larger")

draw_and_predict()

st.header("Random test images")
st.caption("Images from the 10,000 MNIST test images, which the network never trains on. Above "
           "each: its answer, **green ✓** when right, **red ✗** when wrong (with the true digit).")
if "test_batch" not in st.session_state:
    _new_batch()
idx = st.session_state["test_batch"]
st.button("New batch", on_click=_new_batch, help="Show 16 other random test images.")
predicted = lab.predict_proba(data.x_test[idx]).argmax(axis=1)
st.plotly_chart(FIGURES.get(("samples", digest(np.asarray(idx), predicted)),
                            lambda: figures.sample_grid_figure(data.x_test[idx], data.y_test[idx],
                                                               predicted)),
                key="sample_grid", alt=figures.samples_summary(data.y_test[idx], predicted))

st.header("Test accuracy")
st.caption("How many of all 10,000 test images the network gets right, and which digits it mixes up.")
st.button("Measure test accuracy", on_click=_measure,
          help="Runs the network on all 10,000 test images (takes about a second).")
result_ = lab.test_result
if result_ is not None:
    note = "" if result_.step == lab.trainer.step else \
        f" The model has trained {lab.trainer.step - result_.step:,} more steps since: measure again."
    st.metric("Test accuracy", f"{result_.accuracy:.1%}",
              help="Share of the 10,000 test images answered correctly.")
    if result_.confusion is None:  # only the accuracy was kept (a saved lab, a model file)
        st.caption(f"Measured at step {result_.step:,}.{note} Press **Measure test accuracy** to see "
                   "which digits it mixes up.")
    else:
        st.caption(f"Measured at step {result_.step:,}.{note} In the matrix, each row is a true digit "
                   "and each column the network's answer: the diagonal counts right answers, "
                   "everything else is a mix-up.")
        st.plotly_chart(FIGURES.get(("confusion", digest(result_.confusion)),
                                    lambda: figures.confusion_figure(result_.confusion)), key="confusion",
                        alt=figures.confusion_summary(result_.confusion))
