"""The one path from what a student picks to a model and its training settings, and the
server settings read from the environment."""

from __future__ import annotations

import importlib
import logging
import threading

import pytest

from mlp_core.presets import PRESETS, parse_hidden
from mlp_lab import config
from mlp_lab.choices import FOLLOWER_KEYS, FORM_KEYS, ModelChoice
from mlp_lab.pool import POOL


@pytest.mark.parametrize("text", ["256, 128", "256,128", "256-128", " 256 ; 128 "])
def test_hidden_sizes_read_the_same_in_the_form_a_link_and_the_cli(text):
    assert parse_hidden(text) == (256, 128)


@pytest.mark.parametrize("text, words", [("", "at least one"), ("12,x", "whole numbers"),
                                         ("0", "1 to 1024"), ("1,2,3,4,5", "1 to 4 hidden layers"),
                                         ("2048", "1 to 1024")])
def test_hidden_sizes_beyond_what_the_pages_offer_are_refused_with_a_message(text, words):
    from mlp_lab.choices import parse_hidden as page_parse

    with pytest.raises(ValueError, match=words):
        page_parse(text)
    assert parse_hidden("2048, 3000") == (2048, 3000)  # the CLI has no such limit


def test_the_form_round_trips_a_choice_and_names_every_field():
    choice = ModelChoice(kind="dense", hidden=(64, 32), activation="tanh", optimizer="sgd",
                         batch_size=32, shift=2)
    values = choice.form_values()
    assert set(values) == set(FORM_KEYS.values()) and values["m_hidden"] == "64, 32"
    assert ModelChoice.from_form(values, ModelChoice()) == choice
    assert set(FORM_KEYS.values()) <= set(FOLLOWER_KEYS) and "train_lr" in FOLLOWER_KEYS
    notebook = {**ModelChoice.preset("notebook").form_values(), "m_hidden": "not read"}
    assert ModelChoice.from_form(notebook, choice).hidden == (64, 32)  # kept for switching back


def test_presets_come_from_mlp_core_and_the_learning_rate_is_not_part_of_a_choice():
    for kind, (model_cfg, train_cfg) in PRESETS.items():
        choice = ModelChoice.preset(kind)
        assert choice.model_config()["loss"] == model_cfg["loss"]
        assert choice.usual_lr() == train_cfg.lr
        made = choice.train_config(choice.usual_lr())
        assert (made.optimizer, made.batch_size, made.schedule, made.shift) == \
            (train_cfg.optimizer, train_cfg.batch_size, train_cfg.schedule, train_cfg.shift)
    assert not hasattr(ModelChoice(), "lr")


def test_a_new_model_keeps_the_learning_rate_unless_the_optimizer_or_kind_changes():
    dense = ModelChoice.preset("dense")
    assert ModelChoice(hidden=(64,), optimizer="adam").lr_after_change(dense, 0.01) == 0.01
    sgd = ModelChoice(optimizer="sgd")
    assert sgd.lr_after_change(dense, 0.01) == sgd.usual_lr()
    notebook = ModelChoice.preset("notebook")
    assert notebook.lr_after_change(dense, 0.01) == 0.001


@pytest.mark.parametrize("value", ["abc", "-3", "0", "inf", "nan"])
def test_a_bad_environment_setting_is_logged_and_the_default_used(monkeypatch, caplog, value):
    monkeypatch.setenv("MLP_LAB_MAX_SECONDS", value)
    with caplog.at_level(logging.WARNING, logger="mlp_lab"):
        assert config.env_number("MLP_LAB_MAX_SECONDS", 120.0, float) == 120.0
    assert f"MLP_LAB_MAX_SECONDS={value!r} is not a positive number" in caplog.text
    monkeypatch.setenv("MLP_LAB_MAX_SECONDS", "30")
    assert config.env_number("MLP_LAB_MAX_SECONDS", 120.0, float) == 30.0


@pytest.mark.parametrize("value, on", [("", False), ("0", False), ("false", False), ("no", False),
                                       ("1", True), ("yes", True), ("true", True)])
def test_mlp_lab_debug_means_the_same_in_the_app_and_the_cli(monkeypatch, value, on):
    from mlp_core.env import debug_mode

    monkeypatch.setenv("MLP_LAB_DEBUG", value)
    assert debug_mode() is on
    try:
        assert importlib.reload(config).DEBUG is on
    finally:
        monkeypatch.delenv("MLP_LAB_DEBUG")
        importlib.reload(config)


def test_a_slot_gives_its_trainer_back_even_when_the_training_fails(monkeypatch):
    monkeypatch.setattr(config, "MAX_ACTIVE_RUNS", 1)
    with pytest.raises(RuntimeError), POOL.slot(threading.Event()) as slot:
        assert slot.acquired and POOL.counts()["running"] == 1
        raise RuntimeError("a bug in the training")
    assert POOL.counts()["running"] == 0
    cancelled = threading.Event()
    cancelled.set()
    with POOL.slot(threading.Event()) as held, POOL.slot(cancelled) as late:
        assert held.acquired and late.turn == "cancelled"
    with POOL.slot(threading.Event()), POOL.slot(threading.Event(), max_wait=0.1) as late:
        assert late.turn == "timed_out"
    assert (POOL.counts()["running"], POOL.counts()["waiting"]) == (0, 0)
