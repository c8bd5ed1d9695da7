"""Class: the teacher's page. The whole class at a glance (live), a challenge with its
leaderboard, moving everyone to a lesson, the address to hand out, and classroom controls.
Behind the teacher code; everything shown or pushed goes through the store, so every
server process sharing it is one class."""

import time

import streamlit as st

from mlp_lab import classboard
from mlp_lab.address import student_address
from mlp_lab.choices import STEP_OPTIONS
from mlp_lab.classboard import ACTIVE_HOURS, KIND_WORDS, Challenge, push_from
from mlp_lab.classroom import code_gate, log_out, teacher_code
from mlp_lab.figures import class_curves_figure, lr_accuracy_figure
from mlp_lab.keeper import get_keeper
from mlp_lab.session import FIGURES, get_lab, guarded
from mlp_lab.store import StoreError
from mlp_lab.teacher import CODE_KEY, code_problem
from mlp_lab.teaching import LESSONS, LESSONS_BY_KEY
from mlp_lab.text import plain

BOARD_SECONDS = 5.0  # the live board's refresh

lab = get_lab()
keeper = get_keeper()
store = keeper.store
me = st.session_state.get("student_id")

st.title("Class")


def _how_to_set_a_code() -> None:
    st.info("**This page is for the teacher, and it is locked.** No teacher code is set on this server, "
            "so the class's progress is not shown to anyone.", icon=":material/lock:")
    st.markdown(f"""To open it, start the server with a code of your choice (at least 6 characters):

```
{CODE_KEY}=choose-a-code streamlit run dashboard.py --server.address 0.0.0.0
```

or put the same key in `.streamlit/secrets.toml` next to `dashboard.py`:

```
{CODE_KEY} = "choose-a-code"
```

then restart the server and type the code here. Do not put it in a link: the page asks for it.""")


def _address_and_qr() -> None:
    st.subheader("Hand out the link")
    try:
        page_url = str(st.context.url or "")
    except Exception:  # noqa: BLE001 (no browser, as in AppTest: the machine's address is used)
        page_url = ""
    # The app's own address, not this page's: students start on the first page.
    base = page_url.split("?")[0].rstrip("/")
    if base.endswith("/class"):
        base = base[: -len("class")]
    address = student_address(base, st.get_option("browser.serverAddress"))
    text, picture = st.columns([3, 1])
    with text:
        st.markdown("Students open this address on their own device (same network as this server):")
        st.code(address.url, language=None)
        st.caption(plain(address.why))
        if not address.reachable:
            st.warning("Other devices cannot reach this server yet.", icon=":material/wifi_off:")
    with picture:
        st.image(classboard.qr_png(address.url), width=180, caption="Scan to open MLP Lab",
                 alt=f"QR code of {address.url}")


def _accuracy_of(row) -> float | None:
    """The test accuracy measured at the current step, else the last validation check."""
    if row.test_accuracy is not None and row.test_step == row.steps:
        return row.test_accuracy
    return row.val_accuracy


@st.fragment(run_every=BOARD_SECONDS)
@guarded
def board() -> None:
    now = time.time()
    try:
        rows = [r for r in store.class_board(now - ACTIVE_HOURS * 3600) if r.student_id != me]
    except StoreError as exc:
        st.warning(plain(exc), icon=":material/cloud_off:")
        return
    training = sum(r.state == "training" for r in rows)
    waiting = sum(r.state == "waiting" for r in rows)
    best = max((r.test_accuracy for r in rows if r.test_accuracy is not None), default=None)
    cols = st.columns(4)
    cols[0].metric("Students", len(rows), help=f"Active in the last {ACTIVE_HOURS:g} hours (you are not counted).")
    cols[1].metric("Training now", training)
    cols[2].metric("Waiting for a trainer", waiting,
                   help="The server trains a few networks at once; the others wait in line.")
    cols[3].metric("Best test accuracy", "–" if best is None else f"{best:.1%}")
    if not rows:
        st.info("No student is here yet. Hand out the link above: each student who opens it appears here "
                "within a few seconds.", icon=":material/group:")
    else:
        _board_rows(rows, now)
    leaderboard()


def _board_rows(rows, now: float) -> None:
    st.dataframe(classboard.board_table(rows, now), hide_index=True, width="stretch", key="class_table",
                 placeholder="–",
                 column_config={
                     "Learning rate": st.column_config.NumberColumn(format="%g"),
                     "Steps": st.column_config.NumberColumn(format="localized"),
                     "Last loss": st.column_config.NumberColumn(format="%.4f"),
                     "Validation %": st.column_config.NumberColumn(
                         format="%.1f", help="The last check on 1,000 held-out images, during training."),
                     "Test %": st.column_config.NumberColumn(
                         format="%.2f", help="On the 10,000 test images, when measured (Test page, or a challenge)."),
                 })
    names = classboard.unique_names([(r.student_id, r.display_name) for r in rows])
    curves = tuple((names[r.student_id], tuple(s for s, _ in r.curve), tuple(a for _, a in r.curve)) for r in rows)
    points = tuple((names[r.student_id], r.lr, _accuracy_of(r), r.optimizer) for r in rows)
    left, right = st.columns(2)
    # Built once per content (a class that does not train costs no new figure).
    left.plotly_chart(FIGURES.get(("class_curves", curves), lambda: class_curves_figure(curves)),
                      width="stretch", key="class_curves")
    right.plotly_chart(FIGURES.get(("class_lr", points), lambda: lr_accuracy_figure(points)),
                       width="stretch", key="class_lr")
    st.caption(f"Refreshed every {BOARD_SECONDS:g} s. Click a column's title to sort by it.")


def leaderboard() -> None:
    st.subheader("Challenge")
    try:
        states = store.class_state()
        challenge = Challenge.from_dict(states["challenge"].value) if "challenge" in states else None
        entries = store.challenge_entries(challenge.id) if challenge else []
    except StoreError as exc:
        st.warning(plain(exc), icon=":material/cloud_off:")
        return
    if challenge is None:
        st.caption("No challenge is running.")
        return
    st.markdown(f":material/emoji_events: **Now: {plain(challenge.describe())}** (since "
                f"{time.strftime('%H:%M', time.localtime(challenge.started_at))})")
    table = classboard.leaderboard_table(challenge, entries)
    if not table:
        st.info("No run meets the rule yet. Each run that ends is measured by the server on the 10,000 test "
                "images; the best one of each student is listed.", icon=":material/hourglass_top:")
        return
    st.dataframe(table, hide_index=True, width="stretch", key="leaderboard", placeholder="–",
                 column_config={"Test %": st.column_config.NumberColumn(format="%.2f"),
                                "Steps": st.column_config.NumberColumn(format="localized"),
                                "Learning rate": st.column_config.NumberColumn(format="%g")})


def _said(message: str, icon: str) -> None:
    """A toast on the next run (the buttons' callbacks run before the page)."""
    st.session_state["class_page_toast"] = (message, icon)


def _action(function):
    """A button's callback: the store's error becomes the toast (callbacks run before the
    page's own try/except)."""
    def callback(*args):
        try:
            function(*args)
        except StoreError as exc:
            _said(plain(exc), ":material/cloud_off:")
    return callback


@_action
def _start_challenge() -> None:
    rule, limit = st.session_state["challenge_rule"], st.session_state["challenge_limit"]
    target, kind = st.session_state["challenge_target"], st.session_state["challenge_kind"]
    challenge = Challenge.new(rule, limit, target / 100 if rule == "steps" else None, kind, time.time())
    store.set_class_state("challenge", challenge.to_dict())
    keeper.forget_class_states()
    _said(plain(f"Challenge started: {challenge.describe()}."), ":material/emoji_events:")


@_action
def _end_challenge() -> None:
    store.clear_class_state("challenge")
    keeper.forget_class_states()
    _said("The challenge is over (its leaderboard is gone from the students' pages).", ":material/flag:")


def _challenge_form() -> None:
    with st.form("challenge"):
        st.radio("Rule", ["accuracy", "steps"], horizontal=True, key="challenge_rule",
                 help="What the leaderboard ranks. Each run that ends is measured on the 10,000 test images.",
                 format_func={
            "accuracy": "Best test accuracy within a step limit",
            "steps": "Reach a test accuracy with the fewest steps"}.get)
        a, b, c = st.columns(3)
        a.selectbox("At most this many steps", [None, *STEP_OPTIONS], index=STEP_OPTIONS.index(2000) + 1,
                    key="challenge_limit", format_func=lambda s: "no limit" if s is None else f"{s:,}",
                    help="A model trained longer than this does not count (both rules).")
        b.slider("Target test accuracy (fewest steps)", 50, 99, 95, format="%d%%", key="challenge_target",
                 help="Only for the rule 'fewest steps': the test accuracy a run must reach.")
        c.selectbox("Model", list(KIND_WORDS), format_func=lambda k: KIND_WORDS[k].capitalize(),
                    key="challenge_kind", help="Only runs of this kind of model count.")
        st.form_submit_button("Start this challenge", type="primary", icon=":material/emoji_events:",
                              on_click=_start_challenge,
                              help="Replaces the current challenge; students see the rule at once.")
    st.button("End the challenge", icon=":material/flag:", on_click=_end_challenge,
              help="The leaderboard and the students' line about it go away.")


@_action
def _push() -> None:
    pick = st.session_state.get("push_pick")
    if pick == "mine":
        steps = int(st.session_state.get("steps_choice", lab.train_steps))
        payload = classboard.push_settings(lab.choice, lab.lr, steps)
    else:
        payload = classboard.push_lesson(pick)
    store.set_class_state("lesson", payload)
    keeper.forget_class_states()
    _said("Pushed: every student sees a banner with a Join button within a few seconds.", ":material/campaign:")


@_action
def _take_back() -> None:
    store.clear_class_state("lesson")
    keeper.forget_class_states()


def _move_the_class() -> None:
    options = [lesson.key for lesson in LESSONS] + ["mine"]
    labels = {lesson.key: f"Lesson {lesson.title}" for lesson in LESSONS}
    labels["mine"] = f"My current settings ({lab.model.describe()}, {lab.choice.describe_training()}, lr {lab.lr:g})"
    pick = st.selectbox("Lesson to start", options, format_func=labels.get, key="push_pick",
                        help="A lesson of the Lessons page, or the model and settings you have now.")
    st.button("Push it to every student", type="primary", icon=":material/campaign:", on_click=_push,
              help="Every student sees a banner with Join; joining keeps their model in My models first.")
    try:
        pushed = store.class_state().get("lesson")
    except StoreError as exc:
        st.warning(plain(exc), icon=":material/cloud_off:")
        pushed = None
    push = push_from(pushed.value) if pushed else None
    if push is not None:
        when = time.strftime("%H:%M", time.localtime(pushed.set_at))
        st.markdown(f"Students see now (since {when}): *{plain(classboard.banner_text(push))}* **Join**")
        st.button("Take the banner back", icon=":material/undo:", on_click=_take_back,
                  help="Students who joined keep their new model; the banner goes away for the others.")
    if pick in LESSONS_BY_KEY:
        st.caption(plain(LESSONS_BY_KEY[pick].goal))


def _confirmed(key: str, label: str, question: str, icon: str, action) -> None:
    """A button, then a question with Yes / Cancel; Yes runs ``action``."""
    if not st.session_state.get(key):
        st.button(label, icon=icon, key=f"{key}_ask", on_click=st.session_state.__setitem__, args=(key, True),
                  help="Asks you to confirm first.")
        return
    st.warning(question, icon=":material/help:")
    yes, no = st.columns(2)

    def do() -> None:
        st.session_state[key] = False
        action()

    yes.button("Yes, do it", key=f"{key}_yes", type="primary", width="stretch", on_click=do, help=question)
    no.button("Cancel", key=f"{key}_no", width="stretch", on_click=st.session_state.__setitem__, args=(key, False),
              help="Nothing is changed.")


@_action
def _stop_all() -> None:
    store.set_class_state("stop", {"by": "teacher"})
    keeper.forget_class_states()
    stopped = keeper.stop_every_run()  # this process at once; the others within a few seconds
    _said(f"Every run is stopping ({stopped} in this server process at once; the others within a few "
          "seconds).", ":material/stop_circle:")


@_action
def _clear() -> None:
    store.clear_class()
    keeper.forget_class_states()
    _said("The class's records are cleared. Students reappear as they work.", ":material/delete_sweep:")


def _controls() -> None:
    left, right = st.columns(2)
    with left:
        _confirmed("confirm_stop", "Stop every run…", "Stop every student's training now, on every server "
                   "process? Their models keep what they learnt so far.", ":material/stop_circle:", _stop_all)
    with right:
        _confirmed("confirm_clear", "Clear the class's records…", "Clear the board, the challenge and its "
                   "leaderboard, and the pushed lesson? Students' own models and My models stay.",
                   ":material/delete_sweep:", _clear)


def main() -> None:
    code = teacher_code()
    if code is None:
        _how_to_set_a_code()
        return
    problem = code_problem(code)
    if problem:
        st.error(problem, icon=":material/lock:")
        return
    if not code_gate(code):
        return
    if store is None:
        st.error("This server keeps no store, so the class cannot be shown.")
        return
    said = st.session_state.pop("class_page_toast", None)
    if said:
        st.toast(said[0], icon=said[1])
    head, out = st.columns([5, 1])
    head.caption("**What am I looking at?** Every student active in the last few hours, live: their network, "
                 "how far they trained and how well it does. Start a challenge, move the class to a lesson, "
                 "or stop every run. Students see only their own work.")
    out.button("Lock the page", icon=":material/lock:", on_click=log_out, width="stretch",
               help="Forget the code in this tab: the page asks for it again.")
    _address_and_qr()
    st.subheader("The class at a glance")
    board()  # and the challenge's leaderboard: one refresh for both
    with st.expander("Set a challenge", icon=":material/emoji_events:"):
        _challenge_form()
    st.subheader("Move the class")
    _move_the_class()
    st.subheader("Classroom controls")
    _controls()


main()
