"""Streamlit glue for shareable settings: the lab's settings in the page's link
(``st.query_params``), and starting a lesson in one click.

The pure parts (what a link means, the lessons) live in ``mlp_lab.teaching``.
"""

from __future__ import annotations

import time

import streamlit as st

from .budget import ModelRefused
from .choices import DEFAULT_STEPS, FOLLOWER_KEYS, ModelChoice
from .keeper import get_keeper
from .lab import LabSession
from .store import MAX_NAME_CHARS, StoreError
from .teaching import LESSONS_BY_KEY, params_to_settings, settings_to_params
from .text import plain, quoted, shorten

APPLIED_KEY = "link_applied"  # the link of the first visit has been read
LESSON_KEY = "lesson"  # the lesson the user started (its key), if any


def follow_new_model() -> None:
    """The widgets that show the model's settings refill from the new model."""
    for key in FOLLOWER_KEYS:
        st.session_state.pop(key, None)


def install(lab: LabSession, choice: ModelChoice, lr: float, steps: int,
            lesson: str | None = None) -> str | None:
    """Make a fresh model with ``choice`` at ``lr``, set the Train page's steps, remember
    the lesson. Returns None, or why the model was refused (the current one stays)."""
    try:
        lab.reset(choice, lr=lr)
    except ModelRefused as exc:  # no room in the server's memory for it now
        return str(exc)
    follow_new_model()
    st.session_state["steps_choice"] = steps
    lab.set_train_steps(steps)
    if lesson:
        st.session_state[LESSON_KEY] = lesson
    else:
        st.session_state.pop(LESSON_KEY, None)
    return None


def start_lesson(lab: LabSession, key: str) -> str | None:
    """Set up the lesson's model: None, or why it was refused."""
    lesson = LESSONS_BY_KEY[key]
    return install(lab, lesson.choice, lesson.lr, lesson.train_steps, lesson=key)


KEEP_PROBLEM_KEY = "keep_problem"  # why keep_current could not keep the model


def kept_name(description: str, steps: int, before: str, at: str) -> str:
    """"Dense MLP 784-256-128-10 (relu), 2,000 steps (before a link, 10:12)", the network's
    description cut short if the whole would pass a kept name's limit."""
    tail = f", {steps:,} steps (before {before}, {at})"
    return shorten(description, MAX_NAME_CHARS - len(tail)) + tail


def keep_current(lab: LabSession, before: str) -> str | None:
    """Keep a trained model in My models before something replaces it (a link, a lesson the
    teacher pushed): "" if there was nothing to keep, the (escaped) sentence saying where it
    is kept, or None if it could not be kept (why: ``st.session_state[KEEP_PROBLEM_KEY]``)."""
    if not lab.trainer.step:
        return ""
    name = kept_name(lab.model.describe(), lab.trainer.step, before, time.strftime("%H:%M"))
    try:
        get_keeper().keep(st.session_state["student_id"], lab, name)
    except StoreError as exc:
        st.session_state[KEEP_PROBLEM_KEY] = str(exc)
        return None
    return plain(f" Your trained model is kept in My models (Model page) as {quoted(name, 120, '“”')}.")


def apply_link(lab: LabSession) -> None:
    """On a session's first run: if the link holds settings (``?lesson=adam``, or
    ``?model=dense&hidden=128-64&lr=0.001`` ...), make that model. Runs once per session."""
    if st.session_state.get(APPLIED_KEY):
        return
    st.session_state[APPLIED_KEY] = True
    parsed = params_to_settings(st.query_params.to_dict())
    if parsed is None:
        return
    choice, lr, steps, problems = parsed
    lesson = st.query_params.get("lesson")
    lesson = lesson if lesson in LESSONS_BY_KEY else None
    # The problems quote the link's values (cut short): the whole message is escaped, so
    # that a value full of Markdown (a link, an image, :red[...]) shows as the text it is.
    ignored = plain("Parts of this link were ignored: " + "; ".join(problems) + ".") if problems else ""
    if choice == lab.choice and lr == lab.lr:
        # The lab has these settings already: a reload of the app's own address (it holds the
        # settings), or the same lesson again. The trained model stays.
        if lesson:
            st.session_state[LESSON_KEY] = lesson
        if ignored:
            st.toast(ignored, icon=":material/link_off:")
        return
    kept = keep_current(lab, "a link")
    if kept is None:
        st.toast(plain("The link's settings were not used, so that your trained model stays: it "
                       f"could not be kept in My models. {st.session_state.pop(KEEP_PROBLEM_KEY, '')}"),
                 icon=":material/link_off:", duration="long")
        return
    refused = install(lab, choice, lr, steps, lesson=lesson)
    if refused:
        st.toast(f"The link's settings were not used: {refused}", icon=":material/link_off:",
                 duration="long")
        return
    if problems:
        st.toast(ignored + kept, icon=":material/link_off:")
    else:
        st.toast(plain(f"Settings from the link: {lab.model.describe()}, {choice.describe_training()}.") + kept,
                 icon=":material/link:")


def current_params(lab: LabSession) -> dict[str, str]:
    """The query parameters that describe the lab as it is now."""
    steps = st.session_state.get("train_steps", st.session_state.get("steps_choice", DEFAULT_STEPS))
    params = settings_to_params(lab.choice, lab.lr, int(steps))
    lesson = st.session_state.get(LESSON_KEY)
    if lesson in LESSONS_BY_KEY and LESSONS_BY_KEY[lesson].choice.model_config() == lab.choice.model_config():
        params = {"lesson": lesson, **params}
    return params


def sync_link(lab: LabSession) -> None:
    """Keep the address bar's link equal to the current settings (written only on change)."""
    params = current_params(lab)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
