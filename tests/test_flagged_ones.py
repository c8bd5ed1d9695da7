"""The 1 with a flag (mlp_core.augment.flag_ones): MNIST's 1s given the flag many people
write, as a training setting of the dense preset, the Model page, links and the CLI."""

from dataclasses import replace

import numpy as np
import pytest

from mlp_core import TrainConfig, Trainer, build_model
from mlp_core.augment import flag_ones, with_flag
from mlp_core.presets import DENSE_MODEL, DENSE_TRAINING, FLAGGED_ONES
from mlp_lab.choices import ModelChoice
from mlp_lab.teaching import params_to_settings, settings_to_params


def upright_one(top: int = 4, bottom: int = 23, column: int = 14) -> np.ndarray:
    image = np.zeros((28, 28), np.float32)
    image[top:bottom + 1, column - 1:column + 1] = 1.0  # a stem 2 px wide
    return image


def test_a_flag_goes_from_the_top_of_the_stem_down_to_the_left():
    one = upright_one()
    flagged = with_flag(one[None], np.random.default_rng(0))[0]
    added = (flagged > 0.5) & (one == 0)
    rows, cols = np.nonzero(added[:20])  # the flag (a foot, if any, is at the bottom)
    assert len(rows) >= 6 and (cols < 13).all()  # a stroke left of the stem, not a speck
    assert rows.min() <= 6  # from the top
    assert rows[cols == cols.min()].mean() > rows[cols == 12].mean() + 2  # going down to the left
    assert flagged.max() <= 1.0 and flagged.min() >= 0.0 and (flagged >= one).all()  # ink is only added


def test_a_share_of_the_ones_is_flagged_and_nothing_else_changes():
    rng = np.random.default_rng(1)
    labels = np.array([1, 7] * 200)
    images = np.stack([upright_one() if d == 1 else rng.random((28, 28)).astype(np.float32) for d in labels])
    out = flag_ones(images, labels, 0.25)
    changed = (out != images).any(axis=(1, 2))
    assert not changed[labels == 7].any()
    assert 0.15 < changed[labels == 1].mean() < 0.35
    np.testing.assert_array_equal(out, flag_ones(images, labels, 0.25))  # seeded: the same every time
    assert (flag_ones(images, labels, 0.25, seed=2) != out).any()
    np.testing.assert_array_equal(flag_ones(images, labels, 0.0), images)
    as_bytes = flag_ones(np.rint(images * 255).astype(np.uint8), labels, 0.25)
    assert as_bytes.dtype == np.uint8 and (as_bytes != np.rint(images * 255)).any(axis=(1, 2)).sum() == changed.sum()
    with pytest.raises(ValueError, match="from 0 to 1"):
        flag_ones(images, labels, 1.5)
    with pytest.raises(ValueError, match="flag_ones"):
        TrainConfig(flag_ones=2.0)


def test_a_trainer_trains_on_the_flagged_ones(mnist):
    (x, y), _ = mnist
    x, y = x[:600], y[:600]
    model = build_model({"kind": "dense", "hidden": [16]}, seed=0)
    trainer = Trainer(model, x, y, TrainConfig(batch_size=64, flag_ones=0.5))
    trainer._load_images()
    rows = trainer._rows.reshape(-1, 28, 28)
    np.testing.assert_array_equal(rows, flag_ones(x, y, 0.5))
    assert (rows != x).any(axis=(1, 2)).sum() > 0.3 * (y == 1).sum()
    plain = Trainer(model, x, y, TrainConfig(batch_size=64))
    plain._load_images()
    np.testing.assert_array_equal(plain._rows.reshape(-1, 28, 28), x)


def test_the_dense_preset_and_the_model_page_flag_a_quarter_of_the_ones():
    assert DENSE_TRAINING.flag_ones == FLAGGED_ONES == 0.25
    choice = ModelChoice.preset("dense")
    assert choice.flag_ones and choice.train_config(0.002).flag_ones == FLAGGED_ONES
    assert replace(choice, flag_ones=False).train_config(0.002).flag_ones == 0.0
    assert not ModelChoice.preset("notebook").flag_ones
    # a saved model keeps it; a file from before has none
    assert ModelChoice.from_model(DENSE_MODEL, DENSE_TRAINING.to_dict()).flag_ones
    assert not ModelChoice.from_model(DENSE_MODEL, {"optimizer": "adam"}).flag_ones
    params = settings_to_params(replace(choice, flag_ones=False), 0.002, 2000)
    assert params["ones"] == "0"
    back, _, _, problems = params_to_settings(params)
    assert not back.flag_ones and problems == []


def test_cli_option_and_no_augment(tmp_path):
    from mlp_core.cli import _train_settings, build_parser

    parser = build_parser()
    _, cfg = _train_settings(parser.parse_args(["train", "--model", "dense", "--steps", "1"]), parser)
    assert cfg.flag_ones == FLAGGED_ONES
    _, cfg = _train_settings(parser.parse_args(["train", "--model", "dense", "--steps", "1", "--no-augment"]), parser)
    assert cfg.flag_ones == 0.0
    _, cfg = _train_settings(parser.parse_args(["train", "--model", "dense", "--steps", "1", "--flag-ones", "0.5"]),
                             parser)
    assert cfg.flag_ones == 0.5


def test_the_server_shares_one_flagged_training_copy():
    from mlp_lab.shared_data import get_data, prepared

    model = build_model(DENSE_MODEL, seed=0)
    flagged = prepared(model, "x_train", FLAGGED_ONES)
    assert prepared(build_model(DENSE_MODEL, seed=3), "x_train", FLAGGED_ONES) is flagged
    plain = prepared(model, "x_train")
    assert plain is not flagged and not flagged.flags.writeable
    data = get_data()
    changed = (flagged != plain).reshape(len(plain), -1).any(axis=1)
    assert changed.any() and (data.y_train[changed] == 1).all()
    # the same images as flagging the whole set first (the trainer's own path), made a
    # chunk at a time without a full-size copy
    pick = np.flatnonzero(changed)[-40:]
    whole = flag_ones(data.x_train, data.y_train, FLAGGED_ONES)
    np.testing.assert_array_equal(flagged[pick], np.rint(model.prepare(whole[pick]) * 255.0).astype(np.uint8))
    assert prepared(model, "x_test", FLAGGED_ONES) is prepared(model, "x_test")  # test images are never flagged
