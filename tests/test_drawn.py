"""Reading drawn digits (issue #14): the new preset's training still learns MNIST as the suite
expects, settings survive saving and loading, and the dashboard's choices carry them."""

from dataclasses import replace

import numpy as np
import pytest

from mlp_core import DenseMLP, TrainConfig, Trainer, accuracy, build_model, scale
from mlp_core.persistence import model_from_bytes, model_to_bytes
from mlp_core.presets import DENSE_MODEL, DENSE_TRAINING, DRAWING_AUGMENTATION
from mlp_lab.choices import ModelChoice
from mlp_lab.teaching import params_to_settings, settings_to_params


@pytest.mark.slow
def test_a_short_seeded_run_with_the_distortions_still_passes_97_percent(mnist):
    """As tests/test_learning.py's short dense run (784-128-64-10, Adam, 2,300 steps), with
    the preset's deskew, strokes and distortions: the same threshold holds."""
    (x, y), (x_test, y_test) = mnist
    model = DenseMLP(hidden=(128, 64), seed=0, deskew=True, strokes=True)
    config = TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, schedule="cosine", seed=0,
                         **DRAWING_AUGMENTATION)
    trainer = Trainer(model, x, y, config)
    trainer.run(steps=2300)
    test_accuracy = accuracy(y_test, model.predict(scale(x_test)))
    print(f"dense 784-128-64-10 with deskew, strokes and distortions: {test_accuracy:.4f}")
    assert test_accuracy >= 0.97


def test_the_dense_preset_prepares_images_and_distorts_half_of_each_batch():
    assert DENSE_MODEL["deskew"] is True and DENSE_MODEL["strokes"] is True
    assert DENSE_TRAINING.augmentation.active and DENSE_TRAINING.augment_fraction == 0.5
    # The Model page's default: the preset with its distortions off (they pay off in long runs).
    choice = ModelChoice.preset("dense")
    assert (choice.deskew, choice.strokes, choice.distort) == (True, True, False)
    assert choice.model_config()["deskew"] is True
    assert not choice.train_config(0.002).augmentation.active
    distorting = replace(choice, distort=True)
    assert distorting.train_config(0.002).augmentation == DENSE_TRAINING.augmentation
    notebook = ModelChoice.preset("notebook")
    assert (notebook.deskew, notebook.strokes, notebook.distort) == (False, False, False)


def test_settings_survive_saving_and_an_old_file_still_reads_images_as_before():
    model = build_model(DENSE_MODEL, seed=0)
    loaded, meta = model_from_bytes(model_to_bytes(model, training=DENSE_TRAINING.to_dict()))
    assert loaded.deskew and loaded.strokes
    assert ModelChoice.from_model(loaded.config(), meta["training"]).distort  # the CLI preset's file
    old = {k: v for k, v in DENSE_MODEL.items() if k not in ("deskew", "strokes")}
    old_model = build_model(old, seed=0)
    loaded, meta = model_from_bytes(model_to_bytes(old_model, training={"optimizer": "adam", "lr": 0.002}))
    assert not loaded.prepares and "deskew" not in loaded.config()
    choice = ModelChoice.from_model(loaded.config(), meta["training"])
    assert (choice.deskew, choice.strokes, choice.distort) == (False, False, False)
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(images), old_model.predict_proba(images))


def test_a_link_carries_the_new_settings():
    choice = replace(ModelChoice.preset("dense"), deskew=False, distort=False)
    params = settings_to_params(choice, 0.002, 2000)
    assert (params["deskew"], params["pen"], params["distort"]) == ("0", "1", "0")
    back, lr, steps, problems = params_to_settings(params)
    assert back == choice and problems == []
    _, _, _, problems = params_to_settings({**params, "deskew": "yes"})
    assert problems and "deskew" in problems[0]


def test_the_trainer_distorts_with_its_own_seed_per_step(mnist):
    (x, y), _ = mnist
    model = build_model({"kind": "dense", "hidden": [16]}, seed=0)
    config = TrainConfig(optimizer="adam", lr=1e-3, batch_size=32, seed=3, **DRAWING_AUGMENTATION)
    a = Trainer(model, x[:2000], y[:2000], config)
    b = Trainer(model.copy(), x[:2000], y[:2000], config)
    idx = np.arange(32)
    np.testing.assert_array_equal(a._images(idx).copy(), b._images(idx).copy())
    plain = Trainer(model.copy(), x[:2000], y[:2000], replace(config, augment_fraction=0.0))
    changed = np.abs(a._images(idx) - plain._images(idx)).max(axis=1) > 1e-6
    assert 4 <= changed.sum() <= 28  # about half of the batch


def test_a_deskewing_trainer_trains_on_prepared_images_and_validates_on_them(mnist):
    (x, y), (x_test, y_test) = mnist
    model = build_model({"kind": "dense", "hidden": [16], "deskew": True}, seed=0)
    trainer = Trainer(model, x[:1000], y[:1000], TrainConfig(batch_size=10), x_test[:100], y_test[:100])
    assert trainer._rows.dtype == np.uint8  # bytes in, prepared bytes kept
    expected = np.rint(model.prepare(scale(x[:1000])).reshape(1000, 784) * 255).astype(np.uint8)
    np.testing.assert_array_equal(trainer._rows, expected)
    np.testing.assert_allclose(trainer.x_val, model.prepare(scale(x_test[:100])))
    given = Trainer(model, x[:1000], y[:1000], TrainConfig(batch_size=10), prepared=expected)
    np.testing.assert_array_equal(given._rows, expected)
    with pytest.raises(ValueError, match="prepared must hold the 1000 training images"):
        Trainer(model, x[:1000], y[:1000], TrainConfig(batch_size=10), prepared=expected[:5])


def test_cli_options_reach_the_settings(tmp_path):
    from mlp_core.cli import build_parser, _train_settings

    parser = build_parser()
    args = parser.parse_args(["train", "--model", "dense", "--steps", "1", "--no-deskew", "--rotation", "5",
                              "--no-augment", "--thickness", "0.2"])
    model_cfg, train_cfg = _train_settings(args, parser)
    assert "deskew" not in model_cfg and model_cfg["strokes"] is True
    assert (train_cfg.rotation, train_cfg.scale, train_cfg.thickness) == (5.0, 0.0, 0.2)
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--deskew", "--strokes", "--rotation", "--scale", "--shear", "--elastic", "--thickness",
                 "--augment-fraction", "--no-augment"):
        assert flag in help_text


def test_a_trainer_with_a_pool_reads_its_distorted_share_from_it(mnist):
    """The dashboard's way: distorted copies made once (augment.distorted_copies), and each
    step takes the share ``augment_fraction`` of its batch from a random copy."""
    from mlp_core.augment import distorted_copies

    (x, y), _ = mnist
    x, y = x[:500], y[:500]
    config = TrainConfig(batch_size=64, seed=1, **DRAWING_AUGMENTATION)
    pool = distorted_copies(x, config.augmentation, copies=2, seed=0)
    assert pool.shape == (2, 500, 784) and pool.dtype == np.uint8
    np.testing.assert_array_equal(pool, distorted_copies(x, config.augmentation, copies=2, seed=0))
    assert (pool[0] != pool[1]).any(axis=1).mean() > 0.95  # two different distortions of nearly every image
    model = build_model({"kind": "dense", "hidden": [16]}, seed=0)
    trainer = Trainer(model, x, y, replace(config, shift=0), distorted=pool)
    idx = np.arange(64)
    batch = np.rint(trainer._images(idx) * 255).astype(np.uint8)  # (64, 784)
    plain = batch == x[idx].reshape(64, 784)
    from_pool = (batch[None] == pool[:, idx]).all(axis=2).any(axis=0)  # (64,) equals one of its copies
    assert (plain.all(axis=1) | from_pool).all()  # every image: as it is, or one of its distorted copies
    assert 16 <= from_pool.sum() <= 48  # about half of the batch
    with pytest.raises(ValueError, match="distorted must be uint8 copies of the 500 training images"):
        Trainer(model, x, y, config, distorted=pool[:, :100])
    # A pool for a trainer that distorts nothing is not used.
    assert Trainer(model, x, y, replace(config, augment_fraction=0.0), distorted=pool)._distorted is None


def test_the_server_keeps_one_read_only_pool_per_setting():
    from mlp_lab.shared_data import DISTORTED_COPIES, distorted, get_data

    model = build_model(DENSE_MODEL, seed=0)
    pool = distorted(model, DENSE_TRAINING.augmentation)
    assert pool.shape == (DISTORTED_COPIES, len(get_data().x_train), 784) and not pool.flags.writeable
    assert distorted(build_model(DENSE_MODEL, seed=5), DENSE_TRAINING.augmentation) is pool
    assert distorted(model, replace(DENSE_TRAINING, augment_fraction=0.0).augmentation) is None


def test_images_given_as_functions_are_fetched_at_the_first_step_not_before(mnist):
    """The dashboard passes the server's shared copies as functions: a lab (and its page)
    is made without waiting for them; the first run fetches them, once."""
    (x, y), _ = mnist
    x, y = x[:300], y[:300]
    model = build_model({"kind": "dense", "hidden": [16], "deskew": True}, seed=0)
    ready = np.rint(model.prepare(scale(x)).reshape(300, 784) * 255).astype(np.uint8)
    calls = []

    def fetch():
        calls.append(trainer.preparing)  # the run waits for these (the Train page says so)
        return ready

    trainer = Trainer(model, x, y, TrainConfig(batch_size=10), prepared=fetch)
    assert calls == [] and not trainer.preparing
    trainer.run(steps=3)
    trainer.run(steps=3)
    assert calls == [True] and trainer.step == 6 and not trainer.preparing
    np.testing.assert_array_equal(trainer._rows, ready)
