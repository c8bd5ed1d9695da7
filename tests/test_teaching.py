"""mlp_lab.teaching and teaching_figures: the ladder, the shared experiment worker, the
lessons, settings in a link, and the teaching charts. No Streamlit."""

from dataclasses import asdict, replace

import numpy as np
import plotly.graph_objects as go
import pytest

from mlp_lab import teaching_figures as tf
from mlp_lab.shared_data import LabData
from mlp_lab.choices import ModelChoice
from mlp_lab.teaching import (LADDER, LESSONS, RUNGS, Experiments, ladder_summary,
                              params_to_settings, settings_to_params, train_rung)


@pytest.fixture(scope="module")
def small_data(mnist):
    """3,000 training images: enough for the ladder's order to show, fast to train."""
    from mlp_core import scale

    (x_train, y_train), (x_test, y_test) = mnist
    return LabData(scale(x_train[:3000]), y_train[:3000], scale(x_train[3000:3500]),
                   y_train[3000:3500], scale(x_test[:1000]), y_test[:1000])


def test_each_rung_of_the_ladder_changes_exactly_one_thing():
    """The ladder's promise: between two neighbours, one setting differs (the last rung
    swaps the architecture, which is one change of model kind)."""
    assert [r.key for r in LADDER] == ["notebook", "loss", "init", "adam", "batch", "dense"]
    first = LADDER[0].choice
    assert (first.kind, first.loss, first.init, first.optimizer, first.batch_size, LADDER[0].lr) == \
        ("notebook", "mse", "notebook", "sgd", 1, 0.001)  # the notebook's own settings
    assert {rung.lr for rung in LADDER} == {0.001}  # the learning rate never changes
    for before, after in zip(LADDER[:-2], LADDER[1:-1]):
        a, b = asdict(before.choice), asdict(after.choice)
        changed = [k for k in a if a[k] != b[k]]
        assert len(changed) == 1, (after.key, changed)
    last_two = asdict(LADDER[-2].choice), asdict(LADDER[-1].choice)
    assert [k for k in last_two[0] if k not in ("kind", "hidden") and last_two[0][k] != last_two[1][k]] == []
    assert LADDER[-1].choice.kind == "dense"


def test_train_rung_learns_in_ladder_order(small_data):
    results = {key: train_rung(key, 300, small_data) for key in ("notebook", "adam", "dense")}
    for result in results.values():
        assert result.steps == 300 and result.status == "finished"
        assert len(result.losses) == 300 and result.val_steps[-1] == 300
    assert results["notebook"].test_accuracy < 0.3  # the notebook is still near chance
    assert results["dense"].test_accuracy > 0.8
    assert results["dense"].test_accuracy > results["adam"].test_accuracy > results["notebook"].test_accuracy
    assert results["dense"].images_seen == 300 * 64 and results["notebook"].images_seen == 300


def test_experiments_run_once_in_the_background_and_are_shared(small_data):
    experiments = Experiments(small_data)
    experiments.request(["notebook", "init"], 1000)
    experiments.request(["notebook"], 1000)  # already queued: not trained twice
    assert experiments.busy
    experiments.wait(120)
    results = experiments.results(1000)
    assert set(results) == {"notebook", "init"} and not experiments.errors
    first = results["notebook"]
    experiments.request(["notebook"], 1000)  # already done: nothing to do
    assert not experiments.busy and experiments.result("notebook", 1000) is first
    rows = ladder_summary(results)
    assert [r["rung"] for r in rows] == [RUNGS["notebook"].title, RUNGS["init"].title]
    assert rows[0]["gain"] == ""  # no neighbour before it
    with pytest.raises(ValueError, match="steps"):
        experiments.request(["notebook"], 1234)


def test_ladder_summary_gain_is_the_difference_to_the_rung_before():
    from mlp_lab.teaching import RungResult

    results = {k: RungResult(k, 100, 1.0, [1], [1.0], [100], [a], a, "finished")
               for k, a in (("notebook", 0.1), ("loss", 0.12), ("init", 0.3))}
    rows = ladder_summary(results)
    assert [r["gain"] for r in rows] == ["", "+2.0 points", "+18.0 points"]
    results["init"].status = "time_up"  # a busy server cut it short: the table says so
    assert ladder_summary(results)[-1]["steps"] == "100 (stopped early: time up)"


def test_lessons_set_up_the_ladder_and_end_modern():
    assert [lesson.title[0] for lesson in LESSONS] == list("123456")
    assert LESSONS[0].choice == RUNGS["notebook"].choice
    assert LESSONS[-1].choice == ModelChoice.preset("dense")
    for lesson in LESSONS:
        lesson.choice.train_config(lesson.lr)  # the engine accepts every lesson's settings
        assert lesson.steps and lesson.goal


def test_settings_round_trip_through_a_link():
    choice = ModelChoice(kind="dense", hidden=(64, 32), activation="tanh", loss="mse", init="xavier",
                         optimizer="momentum", batch_size=32, schedule="constant")
    params = settings_to_params(choice, 0.01, 5000)
    assert params == {"model": "dense", "hidden": "64-32", "act": "tanh", "loss": "mse",
                      "init": "xavier", "opt": "momentum", "batch": "32", "sched": "constant",
                      "shift": "0", "deskew": "0", "pen": "0", "distort": "0", "ones": "0", "lr": "0.01",
                      "steps": "5000"}
    back, lr, steps, problems = params_to_settings(params)
    assert (back, lr, steps, problems) == (choice, 0.01, 5000, [])
    shifted = replace(choice, shift=2)  # the dense preset's is 1: a link must carry 0 and 2 too
    assert params_to_settings(settings_to_params(shifted, 0.01, 5000))[0] == shifted
    assert params_to_settings({"shift": "7"})[3] == ["shift='7' is not one of (0, 1, 2)"]
    notebook = params_to_settings(settings_to_params(RUNGS["notebook"].choice, 0.001, 2000))
    assert notebook[0] == RUNGS["notebook"].choice


def test_a_lesson_link_and_bad_links():
    assert params_to_settings({}) is None
    assert params_to_settings({"utm_source": "mail"}) is None  # foreign parameters: no settings
    choice, lr, steps, problems = params_to_settings({"lesson": "adam"})
    assert choice == RUNGS["adam"].choice and problems == []
    choice, lr, steps, problems = params_to_settings({"lesson": "adam", "batch": "64"})
    assert choice == RUNGS["batch"].choice  # a lesson, then one setting changed
    choice, lr, steps, problems = params_to_settings(
        {"model": "dense", "hidden": "99999", "opt": "rmsprop", "batch": "3", "lr": "-1",
         "steps": "many", "lesson": "nope"})
    assert choice == ModelChoice.preset("dense")  # every bad value skipped, the rest kept
    assert len(problems) == 6, problems
    assert params_to_settings({"lr": "0.0013"})[1] == 0.001  # the nearest notch of the slider
    assert params_to_settings({"steps": "1999"})[2] == 2000


def test_teaching_figures():
    curves = [("notebook", "1", [100, 200], [0.1, 0.12]), ("dense", "6", [100, 200], [0.9, 0.95])]
    fig = tf.ladder_accuracy_figure(curves)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    assert list(fig.data[1].y) == pytest.approx([10.0, 90.0, 95.0])  # starts at chance
    loss = tf.ladder_loss_figure([("notebook", "1", [1, 2, 3], [1.0, 0.5, 0.0])])
    assert loss.layout.yaxis.type == "log"
    bars = tf.ladder_bar_figure(["a", "b"], [0.1, 0.9], ["notebook", "dense"])
    assert list(bars.data[0].text) == ["10.0%", "90.0%"]
    image = np.zeros((28, 28))
    image[5:20, 10:14] = 1
    heat = np.zeros((28, 28))
    heat[5, 10], heat[6, 10] = 1.0, -0.5
    overlay = tf.saliency_overlay(image, heat, scale=4)
    assert overlay.shape == (112, 112, 3) and overlay.dtype == np.uint8
    red, blue = overlay[5 * 4, 10 * 4], overlay[6 * 4, 10 * 4]
    assert red[0] > red[2] and blue[2] > blue[0]  # red pushes up, blue pushes down
    assert tuple(overlay[0, 0]) == tuple(overlay[0, 4])  # untouched background stays grey
    assert tf.activation_figure("h1", np.ones((128, 28))).data[0].type == "heatmap"
    assert tf.activation_figure("h1", np.arange(5.0)).data[0].type == "bar"
    assert tf.gradient_heatmap(np.ones((784, 64)), "g").data[0].z.dtype == np.int8
    with pytest.raises(ValueError):
        tf.saliency_overlay(np.zeros((28, 28)), np.zeros((10, 10)))


def test_replay_records_evenly_spaced_int8_snapshots(small_data):
    from mlp_lab.replay import record

    choice = ModelChoice(kind="dense", hidden=(32, 16), batch_size=32)
    replay = record(choice, 0.001, small_data, 100, snapshots=6)
    assert replay.steps == [0, 20, 40, 60, 80, 100] and not replay.stopped_early
    assert set(replay.levels) == {"w1", "w2", "w3"} and replay.sizes == (784, 32, 16, 10)
    assert all(a.dtype == np.int8 and a.shape == (784, 32) for a in replay.levels["w1"])
    # the scale is shared by all snapshots of a layer: the largest weight ever is level ±127
    assert max(int(np.abs(a).max()) for a in replay.levels["w1"]) == 127
    first, last = replay.weights("w1", 0), replay.weights("w1", 5)
    from mlp_core import build_model
    np.testing.assert_allclose(first, build_model(choice.model_config(), seed=0).params["w1"],
                               atol=replay.limits["w1"] / 127)  # step 0 is the fresh model
    assert np.abs(last - first).max() > 0  # training moved the weights
    assert len(replay.accuracy) == 6 and replay.accuracy[-1] > replay.accuracy[0]
    short = record(ModelChoice(kind="dense", hidden=(8,)), 0.001, small_data, 10, snapshots=3)
    assert set(short.levels) == {"w1", "w2"}  # one hidden layer: no w3
    slow = record(RUNGS["notebook"].choice, 0.001, small_data, 50_000, snapshots=5, seconds=0.3)
    assert slow.stopped_early and slow.steps[-1] < 50_000


def test_keras_batch_losses_recovers_each_batch_from_the_running_means():
    """Keras reports the epoch's running mean (weighted by batch size); the page plots each
    batch's own loss. 150 images in batches of 64: sizes 64, 64, 22."""
    from mlp_lab.keras_compare import keras_batch_losses

    batch_losses = np.array([2.3, 1.1, 0.4])
    sizes = np.array([64, 64, 22])
    running = np.cumsum(batch_losses * sizes) / np.cumsum(sizes)
    np.testing.assert_allclose(keras_batch_losses(running, 150, 64), batch_losses, rtol=1e-12)
    # an unweighted reading would be wrong on the short last batch
    assert abs(keras_batch_losses(running, 150, 64)[2] - (3 * running[2] - 2 * running[1])) > 0.1


def test_keras_comparison_survives_its_trip_from_the_child_process_as_json():
    from mlp_lab.keras_compare import KerasComparison, Side

    result = KerasComparison(2000, 1, Side("NumPy (mlp_core)", [0.1], [0.8], [64], [2.3]),
                             Side("TensorFlow / Keras", [1.5], [0.79], [64], [2.31]),
                             {"w1": 1e-9}, {"w1": 2e-8}, 2.302, 2.302, "2.21.0", [0.5], [0.5])
    back = KerasComparison.from_json(result.to_json())
    assert back == result and isinstance(back.keras, Side)
