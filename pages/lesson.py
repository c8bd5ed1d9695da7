"""Lessons: one click sets up the model and its training for a step of the lesson; the
current settings are in the page's link, to hand out to a class."""

import streamlit as st

from mlp_lab.address import student_address
from mlp_lab.links import LESSON_KEY, current_params, start_lesson
from mlp_lab.session import get_lab
from mlp_lab.teaching import LESSONS, LESSONS_BY_KEY
from mlp_lab.text import plain

lab = get_lab()


def _start(key: str) -> None:
    refused = start_lesson(lab, key)
    if refused:
        st.session_state["lesson_refused"] = refused
    else:
        st.session_state["lesson_message"] = key


st.title("Lessons")
st.caption(
    "**What am I looking at?** A lesson in six steps, from the notebook's slow network to a "
    "modern one. Each **Start** button sets up the network and its training settings in one "
    "click (it replaces the current model with fresh random weights); then follow the steps "
    "written under it. The link at the bottom of the page hands the current settings to a class.")

refused = st.session_state.pop("lesson_refused", None)
if refused:
    st.error(refused, icon=":material/memory:")
started = st.session_state.pop("lesson_message", None)
if started:
    lesson = LESSONS_BY_KEY[started]
    st.success(f"Lesson {lesson.title} is set up: {lab.model.describe()}, "
               f"{lab.choice.describe_training()}. Now go to Train.")
    st.page_link(lesson.page, label="Go to **Train**", icon=":material/show_chart:")

active = st.session_state.get(LESSON_KEY)
st.header("Six steps")
for lesson in LESSONS:
    with st.container(border=True):
        head, button = st.columns([5, 1])
        mark = " :green-badge[current]" if lesson.key == active else ""
        head.markdown(f"### {lesson.title}{mark}\n{lesson.goal}")
        button.button("Start", key=f"lesson_{lesson.key}", on_click=_start, args=(lesson.key,),
                      type="primary" if lesson.key == active else "secondary", width="stretch",
                      help=f"Set up lesson {lesson.title}: {lesson.choice.describe_training()}. "
                           "This makes a fresh model; the current one is replaced.")
        st.markdown("\n".join(f"{i}. {step}" for i, step in enumerate(lesson.steps, start=1)))

st.header("Share these settings")
st.caption("Students who open this link get the same network and training settings (each with "
           "their own fresh model).")
query = "&".join(f"{k}={v}" for k, v in current_params(lab).items())
try:
    page_url = str(st.context.url or "")
except Exception:  # noqa: BLE001 (no browser, e.g. AppTest: the machine's address alone)
    page_url = ""
configured = st.get_option("browser.serverAddress")
# Streamlit's default is "localhost", which no student can open: the same as not set.
address = student_address(page_url.split("?")[0], None if configured == "localhost" else configured)
# Wrapped, so the link is never a box that scrolls sideways (a keyboard could not scroll it).
st.code(f"{address.url}?{query}", language=None, wrap_lines=True)
(st.caption if address.reachable else st.warning)(plain(f"Where this address comes from: {address.why}"))
