"""Text from users is text, and crafted widget values are refused calmly: what a student
sees in the dashboard (Streamlit's AppTest) when a link, a file, a typed name or a widget
value sent by a hand-made websocket message holds Markdown, is huge, or is not a value the
page offers. Every message shows the text literally (escaped Markdown, see mlp_lab/text.py),
no traceback reaches the page, and the log gets one line.

Under AppTest an element's ``.value`` is the Markdown it was given: ``shown`` gives what
the browser displays (the escaping backslashes gone).
"""

from __future__ import annotations

import logging
import re

import pytest

from mlp_lab.drawing import CLEARED
from mlp_lab.session import clear_sessions
from mlp_lab.text import shown
from test_app import assert_clean, canvas_drawing, wait_idle
from test_hostile_inputs import _meta, _with
from test_teaching_app import new_app

PAYLOAD = ("[Log in here](http://evil.example/login) ![x](http://evil.example/track.png) "
           ":red[**SERVER COMPROMISED**]")
UNESCAPED_MARKDOWN = re.compile(r"(?<!\\)[\[\]()*_`!<>:$|~#]")


@pytest.fixture(autouse=True)
def _fresh_sessions():
    yield
    clear_sessions()


def toasts(at) -> list[str]:
    return [t.value for t in at.toast]


def assert_literal(markdown: str) -> None:
    """``markdown`` has no Markdown of its own left: every special character is escaped."""
    assert not UNESCAPED_MARKDOWN.search(markdown.replace("\\\\", "")), markdown


# --- links ---------------------------------------------------------------------------------
def test_a_markdown_lesson_in_a_link_shows_as_text():
    at = new_app({"lesson": PAYLOAD})
    assert_clean(at)
    [toast] = toasts(at)
    assert_literal(toast)
    assert shown(toast) == ("Parts of this link were ignored: there is no lesson called "
                            "'[Log in here](http://evil.example/login…'.")


def test_a_huge_link_value_is_refused_without_being_echoed():
    at = new_app({"lesson": "A" * 100_000, "lr": "9" * 300})
    assert_clean(at)
    [toast] = toasts(at)
    assert shown(toast) == ("Parts of this link were ignored: lesson= is too long (100,000 characters); "
                            "lr= is too long (300 characters).")
    assert "AAAA" not in toast and len(toast) < 200


def test_a_value_just_under_the_limit_is_read_and_quoted_short():
    at = new_app({"model": "x" * 200})
    [toast] = toasts(at)
    assert shown(toast) == ("Parts of this link were ignored: model must be dense or notebook, not '"
                            + "x" * 39 + "…'.")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999", "0", "-1", "1e-400"])
def test_a_learning_rate_that_is_not_a_positive_finite_number_is_refused(value):
    at = new_app({"model": "dense", "lr": value})
    assert_clean(at)
    assert shown(toasts(at)[0]) == (f"Parts of this link were ignored: lr='{value}' is not a "
                                    "positive number.")
    assert 0 < at.session_state["lab"].lr < 1


# --- files and names -----------------------------------------------------------------------
def model_page(at):
    lab = at.session_state["lab"]
    assert lab.start(30) is None
    wait_idle(lab)
    at.run()
    return lab


def test_an_upload_message_quoting_the_file_shows_as_text():
    at = new_app()
    model_page(at)
    at.file_uploader[0].upload("**bold** [x](http://evil.example).npz", _with(__meta__=None)).run()
    assert_clean(at)
    [error] = [e.value for e in at.error]
    assert_literal(error)
    assert shown(error) == ("Could not load **bold** [x](http://evil.example).npz. This file is not a "
                            "valid MLP Lab model: it has no '__meta__' entry (the description of the "
                            "network); was it saved by MLP Lab? Your current model is unchanged.")
    assert "\\_\\_meta\\_\\_" in error  # not a bold "meta"


def test_a_long_file_name_is_cut_and_a_loaded_files_name_is_text_in_the_sidebar():
    at = new_app()
    lab = model_page(at)
    good = lab.to_bytes()
    name = ":red[" + "n" * 300 + "].npz"
    at.file_uploader[0].upload(name, good).run()
    assert_clean(at)
    [success] = [s.value for s in at.success]
    assert_literal(success)
    assert shown(success).startswith("Loaded :red[" + "n" * 54 + "…: Dense MLP")
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "Loaded from \\:red\\[nnn" in sidebar and ":red[" not in sidebar
    at.file_uploader[0].upload("bad.npz", _with(__meta__=_meta(format="**keras**"))).run()
    [error] = [e.value for e in at.error]
    assert_literal(error)


def test_a_kept_models_name_shows_as_text():
    at = new_app()
    model_page(at)
    name = "**mine** :red[x] [go](http://evil.example)"
    at.text_input(key="keep_name").set_value(name).run()
    next(b for b in at.button if b.label == "Keep this model").click().run()
    assert_clean(at)
    [success] = [s.value for s in at.success]
    assert_literal(success)
    assert shown(success) == f"Kept as “{name}”."
    next(b for b in at.button if b.label == "Load").click().run()
    [success] = [s.value for s in at.success]
    assert_literal(success)
    assert shown(success).startswith(f"Loaded “{name}”")
    next(b for b in at.button if b.label == "Delete…").click().run()
    caption = next(c.value for c in at.caption if c.value.startswith("Delete “"))
    assert caption.startswith("Delete “\\*\\*mine\\*\\* \\:red\\[x\\]")


# --- crafted widget values ------------------------------------------------------------------
CRAFTED_CANVAS = ["not json", 42, ["a"], {"drawing": "abc"}, {"drawing": ["a"]},
                  {"drawing": {"raw": 3, "data": None}}, {"drawing": {"raw": {}, "data": 5}},
                  {"backgroundFit": "x"}, {"backgroundFit": {"naturalWidth": 1}}]


def warning_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING
            and r.name.startswith(("mlp_lab", "streamlit")) and "ScriptRunContext" not in r.getMessage()]


@pytest.mark.parametrize("payload,shows", [
    ("not json", "Draw a digit in the black box with your finger or the mouse."),
    ('{"drawing": "abc"}', CLEARED), ('{"backgroundFit": [1]}', CLEARED), ("[1, 2]", None)])
def test_a_canvas_message_from_the_websocket_that_is_not_a_drawing(payload, shows, caplog):
    """As the browser's message arrives: the canvas's state as JSON text. Streamlit reads
    text that is not JSON as an empty state (and logs it: one line, its traceback dropped)."""
    at = new_app()
    at.switch_page("pages/testing.py").run()
    [canvas] = at.get("bidi_component")
    states = at._tree.get_widget_states()
    state = states.widgets.add()  # AppTest sends no state for a component: add the browser's
    state.id = canvas.proto.id
    state.json_value = payload
    with caplog.at_level(logging.INFO):
        at._run(states)
    assert_clean(at)
    assert (shows or "Draw a digit in the black box with your finger or the mouse.") in [i.value for i in at.info]
    lines = warning_lines(caplog)
    assert len(lines) == (0 if payload == "[1, 2]" else 1), caplog.text  # JSON, not a mapping: empty
    assert all(r.exc_info is None for r in lines) and "Traceback" not in caplog.text
    if payload == "not json":
        assert lines[0].getMessage().endswith("[JSONDecodeError]")


@pytest.mark.parametrize("state", CRAFTED_CANVAS, ids=repr)
@pytest.mark.parametrize("page,key", [("pages/testing.py", "canvas_0"), ("pages/why.py", "why_canvas_0")])
def test_a_crafted_canvas_value_gives_a_fresh_canvas_and_one_log_line(page, key, state, caplog):
    at = new_app()
    at.switch_page(page).run()
    at.session_state[key] = state
    with caplog.at_level(logging.INFO):
        at.run()
    assert_clean(at)
    assert CLEARED in [i.value for i in at.info]
    warnings = warning_lines(caplog)
    assert len(warnings) == 1 and warnings[0].exc_info is None, [r.getMessage() for r in warnings]
    assert "a fresh canvas replaces it" in warnings[0].getMessage()
    # the fresh canvas works: a real drawing is read again
    at.session_state[key[:-1] + "1"] = canvas_drawing([(140, 40), (140, 240)])
    at.run()
    assert_clean(at)
    assert CLEARED not in [i.value for i in at.info]


def send(at, values: dict, click: str | None = None):
    """One script run with the widget states a hand-made websocket message could send: the
    browser's current ones, with ``values`` (widget key -> the serialized text a menu
    sends, as a browser sends it) and the button labelled ``click`` pressed. Streamlit
    passes a selectbox's or radio's unknown text through as the value (AppTest's own
    ``set_value`` cannot send one)."""
    states = at._tree.get_widget_states()
    ids = {w.key: w.id for w in at._tree if getattr(w, "key", None) in values}
    assert set(ids) == set(values), ids
    button = next(b for b in at.button if b.label == click) if click else None
    for state in states.widgets:
        for key, wid in ids.items():
            if state.id == wid:
                state.string_value = values[key]
        if button is not None and state.id == button.id:
            state.trigger_value = True
    return at._run(states)


@pytest.mark.parametrize("key,value,words", [
    ("m_loss", "[x](http://evil.example)", "the loss"), ("m_optimizer", "rmsprop", "the optimizer"),
    ("m_kind", "zzz", "the model"), ("m_activation", "x" * 1000, "the activation"),
    ("m_schedule", "", "the learning-rate schedule")])
def test_a_crafted_menu_value_on_the_model_page_is_refused_with_a_message(key, value, words):
    at = new_app()
    lab = at.session_state["lab"]
    before = lab.model
    send(at, {key: value}, click="Make this model (fresh weights)")
    assert_clean(at)
    assert [shown(e.value) for e in at.error] == [
        f"That is not one of the choices for {words}: pick it again from its menu."]
    assert lab.model is before


def test_a_huge_hidden_layer_text_is_refused_without_being_echoed():
    at = new_app()
    at.text_input(key="m_hidden").set_value("9," * 5000).run()
    next(b for b in at.button if b.label.startswith("Make this model")).click().run()
    assert_clean(at)
    assert [shown(e.value) for e in at.error] == [
        "That is far too long for hidden layer sizes: write a few numbers, e.g. 256, 128."]


def test_a_crafted_kept_model_choice_falls_back_to_a_kept_one():
    at = new_app()
    model_page(at)
    next(b for b in at.button if b.label == "Keep this model").click().run()
    send(at, {"kept_choice": "someone else's model"}, click="Load")
    assert_clean(at)
    assert [shown(s.value) for s in at.success][0].startswith("Loaded “Dense MLP 784-256-128-10 (relu), 30 steps”")


def test_a_crafted_digit_or_method_on_the_why_page_falls_back_to_the_answer():
    at = new_app()
    lab = at.session_state["lab"]
    assert lab.start(200) is None
    wait_idle(lab)
    at.switch_page("pages/why.py").run()
    at.session_state["why_canvas_0"] = canvas_drawing([(140, 40), (140, 240)])
    at.run()
    assert_clean(at)
    answer = next(m.value for m in at.metric if m.label.startswith("B · MNIST-style"))
    send(at, {"why_digit": "<b>7</b>", "why_method": "evil"})
    assert_clean(at)
    assert any(f"what decided the score of **{answer}**" in m.value for m in at.markdown)
