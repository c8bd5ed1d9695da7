"""The distortions of mlp_core.augment: shapes, range, seeds, the identity at zero, and that
each one does what its name says (measured on the image's moments, not by eye)."""

import numpy as np
import pytest

from mlp_core.augment import Augmentation, augment, change_thickness, examples, resample, source_coordinates

STRONG = Augmentation(rotation=15, scale=0.2, shear=0.3, elastic=1.5, thickness=0.5)


def _bar(width=2):
    """A vertical bar through the centre: (1, 28, 28) float32, rows 4-23, columns 14-(14+width)."""
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 4:24, 14:14 + width] = 1.0
    return x


def _angle_from_vertical(img) -> float:
    """Degrees the main axis of ``img`` (28, 28) is turned from vertical, counter-clockwise
    on screen positive (its top leaning left), from second moments."""
    rows, cols = np.indices(img.shape)
    m = img.sum()
    r, c = (img * rows).sum() / m, (img * cols).sum() / m
    mu_rr = (img * (rows - r) ** 2).sum() / m
    mu_cc = (img * (cols - c) ** 2).sum() / m
    mu_rc = (img * (rows - r) * (cols - c)).sum() / m
    # Angle of the main axis measured from the row axis (pointing down), towards the columns.
    theta = 0.5 * np.arctan2(2 * mu_rc, mu_rr - mu_cc)
    return float(np.degrees(theta))  # + : bottom leans right = top leans left = counter-clockwise


@pytest.fixture(scope="module")
def batch(mnist):
    (x, _), _ = mnist
    return (x[:64] / 255.0).astype(np.float32)  # (64, 28, 28)


def test_shapes_and_range(batch):
    rng = np.random.default_rng(0)
    out = augment(batch, rng, STRONG)
    assert out.shape == batch.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    flat = augment(batch.reshape(64, 784), rng, STRONG)
    assert flat.shape == (64, 784)


def test_same_seed_same_images_and_different_seed_different(batch):
    a = augment(batch, np.random.default_rng(5), STRONG)
    b = augment(batch, np.random.default_rng(5), STRONG)
    c = augment(batch, np.random.default_rng(6), STRONG)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_zero_strength_is_the_identity(batch):
    out = augment(batch, np.random.default_rng(0), Augmentation())
    np.testing.assert_array_equal(out, batch)
    assert not Augmentation().active
    # The resampling itself at the identity map reads every pixel where it is.
    coords = source_coordinates(np.zeros(64), np.ones(64), np.zeros(64), np.zeros((64, 2, 16)))
    np.testing.assert_allclose(resample(batch, coords), batch, atol=1e-6)
    np.testing.assert_array_equal(change_thickness(batch, np.zeros(64)), batch)


def test_the_input_is_not_changed(batch):
    before = batch.copy()
    augment(batch, np.random.default_rng(0), STRONG)
    np.testing.assert_array_equal(batch, before)


@pytest.mark.parametrize("degrees", [15.0, -15.0, 30.0])
def test_a_rotation_turns_a_vertical_bar_by_that_angle(degrees):
    bar = _bar()
    assert abs(_angle_from_vertical(bar[0])) < 0.5
    turned = resample(bar, source_coordinates(np.radians([degrees]), np.ones(1), np.zeros(1)))[0]
    # Counter-clockwise on screen (positive) tilts the top to the left.
    assert _angle_from_vertical(turned) == pytest.approx(degrees, abs=1.5)
    top_rows = turned[:10]
    cols = np.indices(top_rows.shape)[1]
    top_col = (top_rows * cols).sum() / top_rows.sum()
    assert (top_col < 14.5) == (degrees > 0)


def test_scale_changes_the_size_and_shear_slants():
    bar = _bar()
    bigger = resample(bar, source_coordinates(np.zeros(1), np.array([1.2]), np.zeros(1)))[0]
    rows_with_ink = np.flatnonzero(bigger.max(axis=1) > 0.5)
    assert 23 <= len(rows_with_ink) <= 25  # 20 rows * 1.2
    slanted = resample(bar, source_coordinates(np.zeros(1), np.ones(1), np.array([0.3])))[0]
    # Italics: the top moves right, 0.3 px per row, so the axis leans by atan(0.3) ~ 16.7 degrees.
    assert _angle_from_vertical(slanted) == pytest.approx(-np.degrees(np.arctan(0.3)), abs=1.5)


def test_thickness_grows_and_shrinks_the_stroke():
    bar = _bar(width=3)
    assert change_thickness(bar, [1.0]).sum() > bar.sum() * 1.3
    assert change_thickness(bar, [-1.0]).sum() < bar.sum() * 0.8
    half = change_thickness(bar, [0.5])
    assert bar.sum() < half.sum() < change_thickness(bar, [1.0]).sum()


def test_fraction_distorts_only_part_of_the_batch(batch):
    out = augment(batch, np.random.default_rng(1), Augmentation(rotation=15, fraction=0.5))
    changed = np.abs(out - batch).reshape(64, -1).max(axis=1) > 1e-6
    assert 16 <= changed.sum() <= 48


def test_elastic_moves_pixels_but_keeps_the_digit(batch):
    out = augment(batch, np.random.default_rng(0), Augmentation(elastic=1.5))
    assert not np.allclose(out, batch)
    # A bend of at most 1.5 px keeps most of the ink where it was (correlation stays high).
    a, b = out.reshape(64, -1), batch.reshape(64, -1)
    corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    assert corr.min() > 0.5


def test_bad_strengths_are_refused():
    with pytest.raises(ValueError, match="rotation must be a number from 0 to 45"):
        Augmentation(rotation=90)
    with pytest.raises(ValueError, match="fraction"):
        Augmentation(fraction=-0.1)
    with pytest.raises(ValueError, match="shape"):
        augment(np.zeros((3, 10)), np.random.default_rng(0), STRONG)


def test_examples_show_every_distortion(batch):
    shown = examples(batch[0])
    assert list(shown) == ["turned", "bigger", "smaller", "slanted", "bent", "thicker", "thinner"]
    for image in shown.values():
        assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1
        assert not np.allclose(image, batch[0])
