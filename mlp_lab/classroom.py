"""Streamlit glue for the class: the teacher's code gate, a student's display name, and the
banner that moves a student to the lesson the teacher pushed.

What the teacher pushes lives in the store (``mlp_lab.store`` class tables), so every
server process sharing it shows it; the pure rules are in ``mlp_lab.classboard`` and
``mlp_lab.teacher``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

import streamlit as st

from . import classboard
from .classboard import Challenge, banner_text, push_from
from .keeper import get_keeper
from .lab import LabSession
from .links import KEEP_PROBLEM_KEY, install, keep_current
from .session import guarded
from .store import StoreError
from .teacher import GATE, configured_code
from .text import plain

log = logging.getLogger("mlp_lab")

BANNER_POLL_SECONDS = 5.0  # how often a student's page looks for a pushed lesson
TEACHER_KEY = "teacher_code_digest"  # this session typed the right code (its digest)
GATE_KEY = "teacher_gate_session"  # a random id per browser session, for the gate's backoff
DISMISSED_KEY = "class_push_dismissed"  # pushes this session answered (Join or Not now)
NAME_KEY = "class_display_name"  # the name this session shows the class (read once)


# --- the teacher's code -------------------------------------------------------------------------
def _secret(key: str):
    return st.secrets.get(key)  # raises without a secrets file: configured_code catches it


def teacher_code() -> str | None:
    return configured_code(secrets_get=_secret)


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def is_teacher(code: str) -> bool:
    return st.session_state.get(TEACHER_KEY) == _digest(code)


def log_out() -> None:
    st.session_state.pop(TEACHER_KEY, None)


def _try_code(code: str) -> None:
    attempt = st.session_state.get("teacher_code_try", "")
    st.session_state["teacher_code_try"] = ""  # the typed code leaves the session at once
    session = st.session_state.setdefault(GATE_KEY, secrets.token_hex(16))
    verdict = GATE.check(session, attempt, code, shared=get_keeper().store)
    if verdict.ok:
        st.session_state[TEACHER_KEY] = _digest(code)
        st.session_state.pop("teacher_gate_message", None)
    else:
        st.session_state["teacher_gate_message"] = verdict.message


def code_gate(code: str) -> bool:
    """True for a session that typed the code; else the password field (and False)."""
    if is_teacher(code):
        return True
    st.markdown("This page is for the teacher: it shows every student's progress. Type the teacher "
                "code the server was started with.")
    with st.form("teacher_gate", clear_on_submit=True, enter_to_submit=True):
        st.text_input("Teacher code", type="password", key="teacher_code_try", max_chars=200,
                      autocomplete="current-password",
                      help="The MLP_LAB_TEACHER_CODE the server was started with.")
        st.form_submit_button("Open the Class page", type="primary", on_click=_try_code, args=(code,),
                              help="Wrong codes make the next try wait a little longer.")
    message = st.session_state.get("teacher_gate_message")
    if message:
        st.error(message, icon=":material/lock:")
    return False


# --- a student's name ---------------------------------------------------------------------------
def display_name(student_id: str) -> str:
    """The name this student shows the class (their own, else the friendly one): read from
    the store once per session."""
    if NAME_KEY not in st.session_state:
        chosen = None
        store = get_keeper().store
        if store is not None:
            try:
                chosen = store.display_name(student_id)
            except StoreError:
                chosen = None
        st.session_state[NAME_KEY] = classboard.shown_name(student_id, chosen)
    return st.session_state[NAME_KEY]


def _save_name() -> None:
    sid = st.session_state.get("student_id")
    typed = st.session_state.get("class_name_field", "")
    store = get_keeper().store
    if not sid or store is None:
        st.session_state["class_name_message"] = "Names cannot be kept on this server."
        return
    try:
        name = store.set_display_name(sid, typed)
    except StoreError as exc:
        st.session_state["class_name_message"] = str(exc)
        return
    st.session_state[NAME_KEY] = classboard.shown_name(sid, name)
    st.session_state["class_name_message"] = ""
    get_keeper().touch(sid)  # the board shows the new name soon


def render_name_field(student_id: str) -> None:
    """In the sidebar: the name the teacher's Class page shows for this student."""
    name = display_name(student_id)
    with st.sidebar.popover(f"Your name in class: {plain(name, 40)}", icon=":material/badge:",
                            width="stretch"):
        st.caption("Your teacher's Class page lists you under this name. Use a nickname, not your "
                   "full name: it is shown to your teacher and may be shown to the class.")
        st.text_input("Name shown in class", value=name, max_chars=40, key="class_name_field",
                      help="Up to 40 characters. Your teacher sees it next to your model's progress.")
        st.button("Save the name", on_click=_save_name, help="Keep this name (also after a reload).")
        message = st.session_state.get("class_name_message")
        if message:
            st.error(plain(message))


# --- the banner: the lesson the teacher pushed ------------------------------------------------------
def _join(lab: LabSession, push) -> str:
    """Keep the current model, then set up the pushed lesson. The toast's text."""
    kept = keep_current(lab, "your teacher's lesson")
    if kept is None:
        return plain("Not joined, so that your trained model stays: it could not be kept in My models. "
                     f"{st.session_state.pop(KEEP_PROBLEM_KEY, '')}")
    refused = install(lab, push.choice, push.lr, push.steps, lesson=push.lesson)
    if refused:
        return plain(f"Not joined: {refused}")
    return plain(f"Joined {push.title}: {lab.model.describe()}, {push.choice.describe_training()}. "
                 "Go to Train and press Train.") + kept


def _on_join(lab: LabSession, push) -> None:
    """Join's callback (it runs before the script, so the click is never lost to a rerun)."""
    st.session_state.setdefault(DISMISSED_KEY, set()).add(push.id)
    st.session_state["class_join_message"] = _join(lab, push)
    st.session_state["class_joined"] = True


def render_banner(lab: LabSession) -> None:
    """At the top of every page: "Your teacher started lesson 3 · ... — Join", and the
    challenge's rule, from what the store holds (checked every BANNER_POLL_SECONDS)."""

    @st.fragment(run_every=BANNER_POLL_SECONDS)
    @guarded
    def class_banner():
        try:
            states = get_keeper().class_states(max_age=BANNER_POLL_SECONDS / 2)
        except StoreError:
            return
        challenge = Challenge.from_dict(states["challenge"].value) if "challenge" in states else None
        push = push_from(states["lesson"].value) if "lesson" in states else None
        if st.session_state.pop("class_joined", False):
            st.rerun(scope="app")  # the new model on every part of the page, not only here
        answered = st.session_state.setdefault(DISMISSED_KEY, set())
        if push is not None and push.id not in answered and not (lab.choice == push.choice and lab.lr == push.lr):
            with st.container(border=True, key="class_banner"):
                text, join, later = st.columns([6, 1, 1], vertical_alignment="center")
                text.markdown(f":material/campaign: **{plain(banner_text(push))}** Join it: your "
                              "current model is kept in My models first.")
                join.button("Join", type="primary", key=f"join_{push.id}", width="stretch",
                            on_click=_on_join, args=(lab, push),
                            help="Keep your current model in My models, then set up the lesson's model.")
                later.button("Not now", key=f"later_{push.id}", width="stretch",
                             on_click=answered.add, args=(push.id,),
                             help="Hide this banner; your model stays as it is.")
        if challenge is not None:
            st.caption(f":material/emoji_events: **Class challenge:** {plain(challenge.describe())}. Runs from "
                       "fresh weights count; the server measures each one on the 10,000 test images "
                       "when it ends.")

    message = st.session_state.pop("class_join_message", None)
    if message:
        st.toast(message, icon=":material/school:", duration="long")
    class_banner()
