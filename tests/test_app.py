"""The dashboard in Streamlit's AppTest (no browser), and the lab behind it (no Streamlit).

AppTest runs the real dashboard.py script: pages render, widgets exist, clicks reach the
model. It cannot run JavaScript or fire ``run_every``, so background runs are awaited by
polling the lab, and the live refresh is tested in tests/browser.
"""

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from charts import chart_titles
from mlp_core.presets import PRESETS
from mlp_lab import config, pool
from mlp_lab.session import clear_sessions, status_lines
from mlp_lab.shared_data import get_data
from mlp_lab.choices import ModelChoice
from mlp_lab.lab import LabSession, loss_trend
from mlp_lab.text import shown

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("pages/model.py", "pages/train.py", "pages/weights.py", "pages/testing.py")


def wait_idle(lab: LabSession, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while lab.running:
        assert time.monotonic() < deadline, "the training run did not end in time"
        time.sleep(0.05)


@pytest.fixture
def app():
    clear_sessions()  # every AppTest has the same session id: start from a fresh lab
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    yield at
    clear_sessions()  # closes the lab: stops any run the test left going


def assert_clean(at: AppTest) -> None:
    """No exception element and no friendly 'Something went wrong' box either."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "Something went wrong" in e.value]


def canvas_drawing(points, width: int = 22) -> dict:
    """What the canvas component sends after a stroke: its PNG as a data URL."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(image).line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url}}


# --- every page ---------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_cleanly_with_the_sidebar_status(app, page):
    app.switch_page(page).run()
    assert_clean(app)
    sidebar = " ".join(m.value for m in app.sidebar.markdown)
    assert "Dense MLP 784-256-128-10" in sidebar and "Steps trained: **0**" in sidebar
    assert "Not training" in sidebar and "Test accuracy" in sidebar


def test_model_page_widgets_and_switching_to_the_notebook_model(app):
    assert app.title[0].value == "MLP Lab"
    assert app.radio(key="m_kind").value == "dense"
    for key in ("m_loss", "m_optimizer", "m_init", "m_activation", "m_schedule"):
        assert app.selectbox(key=key).help, f"{key} has no help text"
    assert app.select_slider(key="m_batch_size").value == 128
    # The dashboard trains the dense preset exactly as the CLI does, shifted images included.
    assert app.select_slider(key="m_shift").value == PRESETS["dense"][1].shift == 1
    assert app.session_state["lab"].trainer.config.shift == 1
    assert app.download_button and app.file_uploader
    app.radio(key="m_kind").set_value("notebook").run()
    # switching the kind loads the notebook's own settings (mlp_core.presets)
    assert app.selectbox(key="m_loss").value == "mse"
    assert app.selectbox(key="m_optimizer").value == "sgd"
    assert app.select_slider(key="m_batch_size").value == 1
    assert app.select_slider(key="m_shift").value == 0
    app.button[0].click().run()  # "Make this model (fresh weights)"
    assert_clean(app)
    lab = app.session_state["lab"]
    assert lab.model.kind == "notebook" and lab.trainer.config.batch_size == 1
    assert lab.trainer.config.shift == 0
    assert any("fresh random weights" in s.value for s in app.success)


def test_bad_hidden_sizes_give_a_message_and_keep_the_model(app):
    lab = app.session_state["lab"]
    before = lab.model
    app.text_input(key="m_hidden").set_value("128, lots").run()
    app.button[0].click().run()
    assert_clean(app)
    assert any("whole numbers" in e.value for e in app.error)
    assert lab.model is before


def test_train_page_widgets(app):
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    lr = app.select_slider(key="train_lr")
    steps = app.select_slider(key="train_steps")
    assert lr.label == "Learning rate" and lr.help and lr.value == PRESETS["dense"][1].lr
    assert steps.label == "Steps" and steps.help and steps.value == 2000  # like the notebook
    labels = [b.label for b in app.button]
    assert "Train" in labels and "Stop" in labels
    assert app.toggle(key="train_log_y").label == "Log scale for the loss"
    assert len(app.get("plotly_chart")) == 2  # loss and validation accuracy
    assert any("What am I looking at" in c.value for c in app.caption)


def test_state_survives_a_page_switch(app):
    app.switch_page("pages/train.py").run()
    lab = app.session_state["lab"]
    app.select_slider(key="train_lr").set_value(0.005).run()
    app.select_slider(key="train_steps").set_value(500).run()
    assert lab.trainer.base_lr == 0.005  # the slider reached the trainer
    app.switch_page("pages/weights.py").run()
    app.switch_page("pages/train.py").run()
    assert app.session_state["lab"] is lab
    assert app.select_slider(key="train_lr").value == 0.005
    assert app.select_slider(key="train_steps").value == 500


def test_a_short_run_through_the_ui_changes_the_weights(app):
    app.switch_page("pages/train.py").run()
    lab = app.session_state["lab"]
    before = {k: v.copy() for k, v in lab.model.params.items()}
    app.select_slider(key="train_steps").set_value(100).run()
    next(b for b in app.button if b.label == "Train").click().run()
    assert_clean(app)
    wait_idle(lab)
    app.run()
    assert lab.trainer.step == 100
    for name, value in lab.model.params.items():
        assert not np.allclose(value, before[name]), f"{name} did not change"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Steps trained"] == "100"
    # How it ended is said once, in the page (no toast repeating the green box on Train)
    assert any("Finished" in s.value for s in app.success)
    assert not any("Finished" in t.value for t in app.toast)
    assert "Steps trained: **100**" in " ".join(m.value for m in app.sidebar.markdown)
    # Train again continues with the same weights: the curve goes on from step 100
    next(b for b in app.button if b.label == "Train").click().run()
    wait_idle(lab)
    assert lab.trainer.step == 200 and lab.snapshot(False).history.steps[-1] == 200


def test_the_learning_rate_slider_reaches_a_running_trainer(app):
    app.switch_page("pages/train.py").run()
    lab = app.session_state["lab"]
    app.select_slider(key="train_steps").set_value(50_000).run()
    next(b for b in app.button if b.label == "Train").click().run()
    try:
        assert lab.running
        assert next(b for b in app.button if b.label == "Train").disabled  # one run at a time
        app.select_slider(key="train_lr").set_value(0.0005).run()
        assert lab.running and lab.snapshot(False).lr == 0.0005  # the run goes on, at the new lr
        assert any("Training: step" in p.proto.text for p in app.get("progress"))
    finally:
        next(b for b in app.button if b.label == "Stop").click().run()
        wait_idle(lab, 10)
    assert lab.status().status == "stopped"


def test_weights_page_heatmaps_for_every_layer(app):
    app.switch_page("pages/weights.py").run()
    assert_clean(app)
    charts = app.get("plotly_chart")
    # neuron grid + (weights, bias, histogram) for each of the 3 layers
    assert len(charts) == 1 + 3 * 3
    titles = chart_titles(app)
    for shape in ("784 × 256", "256 × 128", "128 × 10"):
        assert any(t.endswith(f"shape {shape}") for t in titles), (shape, titles)
    assert app.toggle(key="w_change").label == "Show the change since the start"
    app.toggle(key="w_change").set_value(True).run()
    assert_clean(app)
    assert any("not been trained" in i.value for i in app.info)


def test_weights_page_for_the_notebook_model(app):
    lab = app.session_state["lab"]
    lab.reset(ModelChoice.preset("notebook"))
    app.switch_page("pages/weights.py").run()
    assert_clean(app)
    titles = chart_titles(app)
    for shape in ("128 × 28", "10 × 128", "28 × 1"):
        assert any(t.endswith(f"shape {shape}") for t in titles), (shape, titles)
    # no 28x28 neuron pictures: w1 is not per pixel
    assert not [t for t in titles if "neurons of layer 1" in t], titles


def test_test_page_widgets_and_empty_canvas_message(app):
    app.switch_page("pages/testing.py").run()
    assert_clean(app)
    assert app.get("bidi_component"), "the drawing canvas is missing"
    labels = [b.label for b in app.button]
    assert {"Clear", "New batch", "Measure test accuracy"} <= set(labels)
    assert app.metric[0].label == "Prediction" and app.metric[0].value == "–"
    assert any("Draw a digit" in i.value for i in app.info)
    assert any("not been trained" in w.value for w in app.warning)  # an untrained model says so


def test_a_drawing_injected_into_the_canvas_gives_a_prediction(app):
    lab = app.session_state["lab"]
    lab.start(300)
    wait_idle(lab)
    app.switch_page("pages/testing.py").run()
    app.session_state["canvas_0"] = canvas_drawing([(140, 40), (140, 240)])  # a "1"
    app.run()
    assert_clean(app)
    prediction = next(m for m in app.metric if m.label == "Prediction")
    assert prediction.value == "1"
    assert len(app.image) == 1  # the 28 x 28 image the network receives
    # Clear remounts an empty canvas: back to the message
    next(b for b in app.button if b.label == "Clear").click().run()
    assert next(m for m in app.metric if m.label == "Prediction").value == "–"


def test_test_accuracy_and_confusion_matrix_on_demand(app):
    app.switch_page("pages/testing.py").run()
    batch = app.session_state["test_batch"].copy()
    next(b for b in app.button if b.label == "New batch").click().run()
    assert not np.array_equal(app.session_state["test_batch"], batch)
    next(b for b in app.button if b.label == "Measure test accuracy").click().run()
    assert_clean(app)
    accuracy = next(m for m in app.metric if m.label == "Test accuracy")
    assert accuracy.value.endswith("%")
    assert any(t.startswith("Confusion matrix") for t in chart_titles(app)), chart_titles(app)
    assert "Test accuracy: **" in " ".join(m.value for m in app.sidebar.markdown)


def test_download_then_upload_round_trip_and_a_bad_upload(app):
    lab = app.session_state["lab"]
    lab.start(100)
    wait_idle(lab)
    saved = lab.to_bytes()
    weights = {k: v.copy() for k, v in lab.model.params.items()}
    lab.reset()  # fresh weights, then load the saved ones back through the uploader
    app.run()
    app.file_uploader[0].upload("mine.npz", saved).run()
    assert_clean(app)
    assert any("Loaded mine.npz" in shown(s.value) and "trained 100 steps so far" in shown(s.value)
               for s in app.success)
    assert lab.status().step == 100  # the file's own steps, not 0 (the sidebar shows them)
    assert "Steps trained: **100**" in " ".join(m.value for m in app.sidebar.markdown)
    for name, value in lab.model.params.items():
        np.testing.assert_array_equal(value, weights[name])
    before = lab.model
    app.file_uploader[0].upload("broken.npz", b"this is not a model").run()
    assert_clean(app)
    assert any("not a valid MLP Lab model" in shown(e.value) and "unchanged" in e.value for e in app.error)
    assert lab.model is before


def test_a_diverging_run_is_explained_on_the_train_page(app):
    lab = app.session_state["lab"]
    lab.reset(ModelChoice(kind="dense", hidden=(16,), optimizer="sgd", schedule="constant"))
    lab.start(100, lr=1e6)  # far beyond the slider's range: the loss explodes
    wait_idle(lab)
    app.switch_page("pages/weights.py").run()  # on another page, a toast says how it ended
    assert_clean(app)
    toasts = " ".join(t.value for t in app.toast)
    assert "learning rate" in toasts and "smaller" in toasts
    app.switch_page("pages/train.py").run()
    assert any("smaller" in e.value for e in app.error)  # and the Train page keeps it
    assert not app.toast  # without a toast repeating it


def test_the_last_runs_message_is_not_shown_for_a_new_model(app):
    """After a lesson's Start (or an upload), the previous model's "Finished ..." is not
    the new model's: the Train page says it has not learned anything yet, alone."""
    app.switch_page("pages/train.py").run()
    lab = app.session_state["lab"]
    lab.start(50, lr=0.001)
    wait_idle(lab)
    app.run()
    assert any("Finished" in s.value for s in app.success)
    app.switch_page("pages/lesson.py").run()
    next(b for b in app.button if b.key == "lesson_adam").click().run()
    assert lab.trainer.step == 0
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    assert not any("Finished" in s.value for s in app.success)
    assert any("has not learned anything yet" in i.value for i in app.info)


# --- the lab without Streamlit ------------------------------------------------------------
@pytest.fixture
def lab():
    lab = LabSession(ModelChoice(kind="dense", hidden=(32,), batch_size=64))
    yield lab
    lab.close()


def test_shared_data_is_loaded_once_and_read_only():
    data = get_data()
    assert get_data() is data
    assert data.x_train.dtype == np.float32 and data.x_train.shape[1:] == (28, 28)
    assert len(data.x_train) + len(data.x_val) == 60_000 and len(data.x_test) == 10_000
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(data, name)[0] = 0
    other = LabSession()
    try:
        assert other.trainer.x_train is data.x_train  # not a per-session copy
    finally:
        other.close()


def test_run_stop_and_lr_change_during_a_run(lab):
    assert lab.start(50_000) is None
    assert lab.start(10) is not None  # one run at a time, with a message
    time.sleep(0.3)
    assert lab.set_lr(0.01) is None
    assert lab.status().running and lab.snapshot(False).lr == 0.01
    lab.stop()
    wait_idle(lab, 10)
    status = lab.status()
    assert status.status == "stopped" and 0 < status.step < 50_000
    assert status.samples_per_second and status.samples_per_second > 0
    assert [k for k, _ in lab.pop_notices()] == ["info"] and lab.pop_notices() == []


def test_a_loaded_file_keeps_its_steps_history_and_test_step(lab):
    lab.start(120)
    wait_idle(lab)
    history = lab.snapshot(False).history
    measured = lab.evaluate_test()
    saved = lab.to_bytes()
    other = LabSession(ModelChoice(kind="notebook"))
    try:
        assert other.load_bytes(saved, "mine.npz") is None
        status = other.status()
        assert status.step == 120 and status.source == "mine.npz" and not status.untrained
        # the file's own test accuracy, "at step 120" (its matrix is measured again on demand)
        assert (status.test_accuracy, status.test_step) == (measured.accuracy, 120)
        assert other.snapshot(False).history.losses == history.losses  # the curve comes along
        assert other.evaluate_test().step == 120  # "at step 120", not "at step 0"
        other.start(10)
        wait_idle(other)
        assert other.status().step == 130 and other.snapshot(False).history.steps[-1] == 130
    finally:
        other.close()


def test_an_older_file_gives_its_step_count_and_a_broken_state_is_skipped(lab):
    from mlp_core.persistence import model_to_bytes

    model = ModelChoice(kind="dense", hidden=(8,)).build()
    older = model_to_bytes(model, training={"optimizer": "adam", "lr": 0.001, "steps": 2000})
    assert lab.load_bytes(older, "old.npz") is None
    assert lab.status().step == 2000 and lab.snapshot(False).history.steps == []
    broken = model_to_bytes(model, training={"steps": 700},
                            extra={"trainer_state": {"step": "many", "samples_seen": 0}})
    assert lab.load_bytes(broken, "broken.npz") is None  # the weights load; the steps from training
    assert lab.status().step == 700


def test_misuse_gets_messages_not_exceptions(lab):
    assert "between 1 and" in lab.start(0)
    assert "between 1 and" in lab.start(config.MAX_STEPS_PER_RUN + 1)
    assert "whole number" in lab.start("many")
    assert "positive" in lab.set_lr(-1)
    assert "unchanged" in lab.load_bytes(b"", "empty.npz")
    assert not lab.running


def test_runs_are_capped_across_sessions(lab, monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    other = LabSession(ModelChoice(kind="dense", hidden=(8,)))
    try:
        assert other.start(50_000) is None
        assert lab.start(10) is None  # not refused: it waits for a free trainer
        time.sleep(0.3)
        assert lab.waiting and lab.status().waiting and lab.trainer.step == 0
    finally:
        other.close()
    wait_idle(lab)  # the other run ended: this one started on its own and finished
    assert lab.trainer.step == 10 and not other.running and pool.active_runs() == 0


def test_close_stops_the_thread(lab):
    lab.start(50_000)
    time.sleep(0.2)
    lab.close()
    assert not lab.running and pool.active_runs() == 0
    assert lab.pop_notices() == []  # nobody is there to read it
    assert "ended" in lab.start(10)


def test_reset_and_predict(lab):
    first = lab.model.params["w1"].copy()
    lab.reset()
    assert not np.array_equal(first, lab.model.params["w1"])  # fresh weights
    proba = lab.predict_proba(get_data().x_test[:5])
    assert proba.shape == (5, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_loss_trend_and_status_words():
    assert loss_trend(np.linspace(2, 0.1, 100)) == "down"
    assert loss_trend(np.r_[2.0, np.full(99, 1e5)]) == "up"
    assert loss_trend(np.ones(100)) == "stuck"
    assert loss_trend([1.0, 2.0]) == "unclear"
    lab = LabSession(ModelChoice.preset("notebook"))
    try:
        lines = " ".join(status_lines(lab.status()))
        assert "Notebook net" in lines and "Steps trained: **0**" in lines
    finally:
        lab.close()


def test_every_control_has_help_text(app):
    """Every widget explains itself in plain words (the ? next to it)."""
    for page in PAGES:
        app.switch_page(page).run()
        for kind in ("button", "select_slider", "selectbox", "radio", "text_input", "toggle",
                     "download_button", "file_uploader"):
            for widget in getattr(app, kind):
                assert widget.help, f"{page}: {kind} {widget.label!r} has no help text"


def assert_pages_do_not_import_tensorflow(pages) -> None:
    """Open ``pages`` in a fresh process (this one may have imported TensorFlow already) and
    check that TensorFlow is still not loaded."""
    import subprocess
    import sys

    code = ("import sys; from streamlit.testing.v1 import AppTest\n"
            f"at = AppTest.from_file({str(ROOT / 'dashboard.py')!r}, default_timeout=60); at.run()\n"
            f"for page in {tuple(pages)!r}: at.switch_page(page).run()\n"
            "assert not at.exception\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]


def test_the_app_does_not_import_tensorflow():
    """TensorFlow is heavy and optional: the dashboard must start without it."""
    assert_pages_do_not_import_tensorflow(PAGES)


def test_a_bug_shows_a_friendly_message_not_a_traceback(app, monkeypatch):
    lab = app.session_state["lab"]
    monkeypatch.setattr(lab, "status", lambda: 1 / 0)  # a bug in the status everyone reads
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception
        assert any("Something went wrong" in e.value for e in app.error), page
