"""The teaching pages in Streamlit's AppTest: Lessons, Notebook vs modern, Why this answer,
and settings carried by the link (st.query_params)."""

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from charts import chart_by_title, chart_titles, heatmap_values, trace_names
from mlp_lab.session import clear_sessions
from mlp_lab.teaching import LESSONS, RUNGS, get_experiments
from test_app import assert_clean, assert_pages_do_not_import_tensorflow, canvas_drawing, wait_idle

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_SECONDS = 0.5  # pages/replay.py: Play shows one snapshot per this many seconds
TEACHING_PAGES = ("pages/lesson.py", "pages/compare.py", "pages/why.py", "pages/inside.py",
                  "pages/replay.py", "pages/keras.py")


def new_app(query: dict | None = None) -> AppTest:
    clear_sessions()
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=90)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    return at


@pytest.fixture
def app():
    at = new_app()
    yield at
    clear_sessions()


@pytest.mark.parametrize("page", TEACHING_PAGES)
def test_teaching_pages_render_with_a_plain_words_caption(app, page):
    app.switch_page(page).run()
    assert_clean(app)
    assert any("What am I looking at?" in c.value for c in app.caption), page
    for kind in ("button", "select_slider", "slider", "selectbox", "radio", "toggle", "checkbox",
                 "number_input", "text_input"):
        for widget in getattr(app, kind):
            assert widget.help, f"{page}: {kind} {widget.label!r} has no help text"


def test_the_link_always_holds_the_current_settings(app):
    assert app.query_params["model"] == ["dense"] or app.query_params["model"] == "dense"
    app.switch_page("pages/lesson.py").run()
    app.button(key="lesson_notebook").click().run()
    assert_clean(app)
    lab = app.session_state["lab"]
    assert lab.choice == LESSONS[0].choice and lab.model.kind == "notebook"
    params = {k: (v[-1] if isinstance(v, list) else v) for k, v in app.query_params.items()}
    assert params["lesson"] == "notebook" and params["loss"] == "mse" and params["batch"] == "1"
    assert any("is set up" in s.value for s in app.success)
    assert any("?lesson=notebook&model=notebook" in c.value for c in app.code)


def test_a_lesson_starts_in_one_click_and_the_other_pages_follow(app):
    app.switch_page("pages/model.py").run()  # its widgets hold the dense settings now
    app.switch_page("pages/lesson.py").run()
    app.button(key="lesson_adam").click().run()
    app.switch_page("pages/model.py").run()
    assert app.radio(key="m_kind").value == "notebook"
    assert app.selectbox(key="m_optimizer").value == "adam"
    app.switch_page("pages/train.py").run()
    assert app.select_slider(key="train_steps").value == 2000
    assert "Notebook net" in " ".join(m.value for m in app.markdown)


def test_opening_a_shared_link_sets_up_that_model():
    at = new_app({"lesson": "batch"})
    try:
        assert_clean(at)
        lab = at.session_state["lab"]
        assert lab.choice == RUNGS["batch"].choice
        at = at.switch_page("pages/train.py").run()
        assert at.select_slider(key="train_steps").value == 2000
    finally:
        clear_sessions()
    at = new_app({"model": "dense", "hidden": "64", "lr": "0.01", "steps": "500"})
    try:
        lab = at.session_state["lab"]
        assert lab.model.describe() == "Dense MLP 784-64-10 (relu)" and lab.trainer.base_lr == 0.01
        at.switch_page("pages/train.py").run()
        assert at.select_slider(key="train_steps").value == 500
        assert at.select_slider(key="train_lr").value == 0.01
    finally:
        clear_sessions()


def test_a_bad_link_still_opens_with_a_note():
    at = new_app({"model": "dense", "batch": "3"})
    try:
        assert_clean(at)
        assert at.session_state["lab"].choice.batch_size == 128
        assert any("ignored" in t.value for t in at.toast)
    finally:
        clear_sessions()


def test_compare_page_says_when_the_ladder_waits_for_a_free_trainer(app, monkeypatch):
    from mlp_lab import config, teaching
    from mlp_lab.choices import ModelChoice
    from mlp_lab.lab import LabSession

    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    teaching.get_experiments.reset()  # this test's own ladder worker
    ladder = teaching.get_experiments()
    busy = LabSession(ModelChoice(kind="dense", hidden=(16,), batch_size=32))
    try:
        busy.start(50_000)  # another student holds the only trainer
        app.switch_page("pages/compare.py").run()
        next(b for b in app.button if b.label == "Train all six").click().run()
        deadline = time.monotonic() + 30
        while not ladder.waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        app.run()
        assert_clean(app)
        assert any("Waiting for a free trainer" in i.value for i in app.info)
        assert not app.get("progress")  # not a bar stuck at 0 %
    finally:
        ladder.close()
        busy.close()
        ladder.wait(30)
        teaching.get_experiments.reset()


@pytest.mark.slow
def test_compare_page_trains_the_ladder_and_overlays_the_curves(app):
    app.switch_page("pages/compare.py").run()
    assert any("Train all six" in i.value for i in app.info)
    app.select_slider(key="cmp_steps").set_value(1000).run()
    next(b for b in app.button if b.label == "Train all six").click().run()
    get_experiments().wait(600)  # AppTest cannot fire run_every: wait, then run again
    app.run()
    assert_clean(app)
    metrics = {m.label: m.value for m in app.metric}
    assert "Test accuracy" in metrics
    accuracy = chart_by_title(app, "Accuracy on unseen images")
    # one line per rung, named as the rung ("1 · The notebook", ..., "6 · A modern network")
    assert trace_names(accuracy) == [r.title for r in RUNGS.values()]
    bars = chart_by_title(app, "Test accuracy after the same number of steps")
    assert bars["data"][0]["x"] == [r.title for r in RUNGS.values()]
    table = app.table[0].value
    assert list(table["rung"]) == [r.title for r in RUNGS.values()]
    acc = [float(v.rstrip("%")) for v in table["test accuracy"]]
    assert acc[0] < 25 and acc[-1] > 90 and acc[-1] > acc[0] + 60
    assert any("66.8" in m.value for m in app.markdown)


def test_why_page_ab_saliency_and_activations(app):
    lab = app.session_state["lab"]
    assert lab.start(300) is None
    wait_idle(lab)
    app.switch_page("pages/why.py").run()
    assert any("Draw a digit" in i.value for i in app.info)
    app.session_state["why_canvas_0"] = canvas_drawing([(140, 40), (140, 240)])
    app.run()
    assert_clean(app)
    answers = {m.label: m.value for m in app.metric}
    assert answers["B · MNIST-style: answer"] == "1"  # a clear, centred 1
    assert "A · Just shrunk: answer" in answers
    titles = chart_titles(app)
    assert any(t.endswith("neurons fire") for t in titles), titles
    assert any(t.startswith("Output") for t in titles), titles
    assert app.selectbox(key="why_digit").value == 1
    assert any("% of the colour is red (for 1)" in c.value for c in app.caption)
    app.selectbox(key="why_digit").set_value(7).run()
    assert any("(for 7)" in c.value for c in app.caption)
    app.radio(key="why_method").set_value("occlusion").run()
    assert_clean(app)
    assert any("(for 7)" in c.value for c in app.caption)


def test_why_page_refuses_a_hostile_drawing_before_decoding_it(app):
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")  # 36 Mpixel, a few kB compressed
    bomb = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    app.switch_page("pages/why.py").run()
    for hostile in ({"drawing": {"data": bomb}}, {"drawing": {"data": "data:image/png;base64,@@"}},
                    {"drawing": {"data": 42}}):
        app.session_state["why_canvas_0"] = hostile
        app.run()
        assert_clean(app)
        assert any("could not be read" in i.value for i in app.info), hostile
        assert not app.metric  # no answer from a drawing that was refused


def test_why_page_for_the_notebook_model_shows_its_matrix_layers(app):
    app.switch_page("pages/lesson.py").run()
    app.button(key="lesson_notebook").click().run()
    app.switch_page("pages/why.py").run()
    app.session_state["why_canvas_0"] = canvas_drawing([(90, 60), (190, 60), (130, 230)])
    app.run()
    assert_clean(app)
    titles = chart_titles(app)
    assert any("(h1, 128 × 28)" in t for t in titles), titles
    assert any("(h2, 10 × 28)" in t for t in titles), titles
    assert np.isfinite([float(m.value) for m in app.metric if "answer" in m.label]).all()


def test_the_teaching_pages_do_not_import_tensorflow():
    """Only the NumPy-vs-Keras view may import TensorFlow; these pages must not."""
    assert_pages_do_not_import_tensorflow(TEACHING_PAGES)


def test_inside_page_shows_the_engines_gradients_and_the_equations(app):
    lab = app.session_state["lab"]
    assert lab.start(30) is None  # a trained optimizer holds state (Adam's moments)
    wait_idle(lab)
    app.switch_page("pages/inside.py").run()
    assert_clean(app)
    # the same batch the page drew, through mlp_core's own backward pass
    idx = np.random.default_rng(0).choice(len(lab.data.y_train), size=64, replace=False)
    xb, yb = lab.data.x_train[idx], lab.data.y_train[idx]
    loss, grads = lab.model.copy().loss_and_grads(xb, yb)
    assert float(app.metric[1].value) == pytest.approx(loss, abs=1e-4)
    shown = heatmap_values(chart_by_title(app, "∂L/∂w3"))
    np.testing.assert_allclose(shown, grads["w3"], rtol=1e-5, atol=1e-7)
    # the update shown comes from a copy of the lab's own optimizer (Adam's moments included)
    update = heatmap_values(chart_by_title(app, "w3: update"))
    assert np.isfinite(update).all() and np.abs(update).max() > 0
    assert lab.trainer.optimizer.t == 30  # looking did not step the real optimizer
    latex = " ".join(x.value for x in app.latex)
    assert "(784\\times64)\\,(64\\times256)" in latex and "softmax" in latex
    before = app.metric[1].value
    app.button[0].click().run()  # another batch: another loss
    assert app.metric[1].value != before


def test_inside_page_for_the_notebook_model(app):
    app.switch_page("pages/lesson.py").run()
    app.button(key="lesson_notebook").click().run()
    app.switch_page("pages/inside.py").run()
    assert_clean(app)
    assert app.metric[0].value == "1"  # the notebook's batch of one
    latex = " ".join(x.value for x in app.latex)
    assert "128\\times28" in latex and "\\|" in latex  # its matrix shapes and squared error
    assert len(app.get("plotly_chart")) == 9  # w1, w2, w3 × weights, gradient, update


def test_replay_records_and_scrubs_and_plays(app):
    app.switch_page("pages/replay.py").run()
    assert any("Record" in i.value for i in app.info)
    play = next(b for b in app.button if b.label == "Play")
    assert play.disabled  # nothing to play yet
    app.select_slider(key="replay_steps").set_value(200).run()
    next(b for b in app.button if b.label == "Record").click().run()
    lab = app.session_state["lab"]
    assert any(b.label == "Stop" for b in app.button) or not lab.recording  # recording in the background
    deadline = time.monotonic() + 60
    while lab.recording:  # AppTest cannot fire run_every: wait, then run again
        assert time.monotonic() < deadline, "the recording did not finish"
        time.sleep(0.05)
    app.run()
    assert_clean(app)
    assert [m.value for m in app.metric][0] == "0"
    grid = heatmap_values(chart_by_title(app, "The 64 neurons"))
    app.slider[0].set_value(20).run()
    assert app.metric[0].value == "200"
    # the pictures themselves changed (not only the step in the title)
    assert not np.array_equal(heatmap_values(chart_by_title(app, "The 64 neurons")), grid)
    started = time.monotonic()
    next(b for b in app.button if b.label == "Play").click().run()  # at the end: from the start
    assert app.session_state["replay_playing"] and app.metric[0].value == "0"
    time.sleep(2.2 * SNAPSHOT_SECONDS)
    app.run()  # what a tick of the timer does (run_every never fires in AppTest)
    # one snapshot (10 steps) per SNAPSHOT_SECONDS of wall time, however slow the run was
    shown, elapsed = int(app.metric[0].value.replace(",", "")), time.monotonic() - started
    assert 20 <= shown <= 10 * int(elapsed / SNAPSHOT_SECONDS), (shown, elapsed)
    next(b for b in app.button if b.label == "Pause").click().run()
    assert not app.session_state["replay_playing"]
    assert app.session_state["lab"].trainer.step == 0  # the lab's own model was not trained


@pytest.mark.tensorflow
@pytest.mark.slow
def test_numpy_vs_keras_trains_both_and_compares_gradients(app):
    pytest.importorskip("tensorflow")
    from mlp_lab.keras_compare import get_jobs

    app.switch_page("pages/keras.py").run()
    assert any("Run both" in i.value for i in app.info)
    app.select_slider(key="keras_n").set_value(2000)
    app.select_slider(key="keras_epochs").set_value(2).run()
    next(b for b in app.button if b.label == "Run both").click().run()
    assert next(b for b in app.button if b.label == "Run both").disabled  # one at a time
    get_jobs().wait(600)
    app.run()
    assert_clean(app)
    assert (2000, 2) not in get_jobs().errors, get_jobs().errors
    labels = [m.label for m in app.metric]
    assert labels.count("Seconds per epoch") == 2 and labels.count("Accuracy on unseen images") == 2
    curves = chart_by_title(app, "Loss on each batch while training (lower is better)")
    assert trace_names(curves) == ["NumPy (mlp_core)", "TensorFlow / Keras"]
    times = chart_by_title(app, "Seconds for each epoch (shorter is faster)")["data"]
    assert [len(t["x"]) for t in times] == [2, 2]
    rows = app.dataframe[0].value
    assert list(rows["array"]) == ["w1", "b1", "w2", "b2", "w3", "b3"]
    # the same maths: the two gradients agree to float32 rounding, and the page says so
    assert all(float(v) < 1e-4 for v in rows["relative to the largest gradient"])
    assert any(s.value.startswith("**Yes.**") for s in app.success)
    result = get_jobs().result((2000, 2))
    assert result.loss_ours == pytest.approx(result.loss_keras, rel=1e-5)
    assert abs(result.ours.val_accuracy[-1] - result.keras.val_accuracy[-1]) < 0.08
    # both loss curves fall, over the same images
    for side in (result.ours, result.keras):
        assert len(side.losses) >= 2 * (2000 // 64) and side.images_seen[-1] >= 3900
        assert np.mean(side.losses[-10:]) < 0.5 * np.mean(side.losses[:3])


def test_numpy_vs_keras_waits_for_a_free_trainer(app):
    """The comparison takes a slot of the server's trainer pool, like a student's run: with
    every slot taken it waits (and says so), and it can leave the line."""
    import contextlib
    import threading

    from mlp_lab import config
    from mlp_lab.keras_compare import get_jobs
    from mlp_lab.pool import POOL

    jobs = get_jobs()
    held = contextlib.ExitStack()
    for _ in range(config.MAX_ACTIVE_RUNS):  # every trainer of the server taken
        assert held.enter_context(POOL.slot(threading.Event())).acquired
    try:
        app.switch_page("pages/keras.py").run()
        app.select_slider(key="keras_n").set_value(10000)
        app.select_slider(key="keras_epochs").set_value(3).run()
        next(b for b in app.button if b.label == "Run both").click().run()
        deadline = time.monotonic() + 10
        while not jobs.waiting:
            assert time.monotonic() < deadline, "the comparison did not queue for a trainer"
            time.sleep(0.05)
        app.run()
        assert any("Waiting for a free trainer" in i.value for i in app.info)
        assert next(b for b in app.button if b.label == "Run both").disabled
        jobs.close()  # leaves the line: no child process was started
        jobs.wait(10)
        app.run()
        assert_clean(app)
        assert jobs.result((10000, 3)) is None and (10000, 3) not in jobs.errors
        assert not next(b for b in app.button if b.label == "Run both").disabled
    finally:
        jobs.close()
        held.close()


def test_numpy_vs_keras_without_tensorflow_says_so_without_a_traceback(app, tmp_path, monkeypatch):
    """A server without TensorFlow: the child process cannot import it, and the page says
    what to install (no exception box, no traceback)."""
    from mlp_lab.keras_compare import get_jobs

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'tensorflow'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the child finds this one first
    jobs = get_jobs()
    app.switch_page("pages/keras.py").run()
    app.select_slider(key="keras_n").set_value(5000)
    app.select_slider(key="keras_epochs").set_value(1).run()
    next(b for b in app.button if b.label == "Run both").click().run()
    jobs.wait(120)
    app.run()
    assert_clean(app)
    errors = [e.value for e in app.error]
    assert any("needs TensorFlow" in e and "pip install tensorflow" in e for e in errors), errors
    assert not any("Traceback" in e for e in errors)
    assert jobs.result((5000, 1)) is None
    assert not next(b for b in app.button if b.label == "Run both").disabled  # can try again


@pytest.mark.slow
def test_the_keras_comparison_keeps_tensorflow_out_of_the_server():
    """The cause of the old slowness: once ``keras`` is in the server's sys.modules, Streamlit
    calls keras.backend.clear_session() (a full gc.collect) after every script run. The
    comparison must run to the end with TensorFlow loaded only in its child process."""
    pytest.importorskip("tensorflow")
    import subprocess
    import sys

    code = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
            "from mlp_lab.keras_compare import get_jobs\n"
            f"at = AppTest.from_file({str(ROOT / 'dashboard.py')!r}, default_timeout=60); at.run()\n"
            "at.switch_page('pages/keras.py').run()\n"
            "at.select_slider(key='keras_n').set_value(2000)\n"
            "at.select_slider(key='keras_epochs').set_value(1).run()\n"
            "next(b for b in at.button if b.label == 'Run both').click().run()\n"
            "get_jobs().wait(600); at.run()\n"
            "assert not at.exception and (2000, 1) not in get_jobs().errors, get_jobs().errors\n"
            "assert get_jobs().result((2000, 1)) is not None\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=700)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
