"""The canvas set is what a user produces: draw a sample of it live on the Test page.

The first drawings of ``canvas_set.pens.plan`` (the committed set's own plan: its size
and seed are read from the zip) are drawn again with the mouse on the real canvas,
after a quickly trained model was uploaded on the Model page. For each, the answer the
Test page shows must equal the offline replay (``mlp_lab.canvas_set.replay``) of the PNG
the canvas sent to Python, and of the committed PNG of the same drawing.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from canvas_set.make_set import PER_CLASS, SEED, open_test_page
from canvas_set.pens import plan
from mlp_core import load_mnist
from mlp_core.networks import build_model
from mlp_core.persistence import save_model
from mlp_core.presets import DENSE_MODEL, DENSE_TRAINING
from mlp_core.trainer import Trainer
from mlp_lab.canvas_set import CanvasSet, load_canvas_set, pixels, replay, small_png

from browser_ui import assert_no_exception, record

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SAMPLE = 8


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    """The dense preset after 300 steps (a few seconds): reads most digits, not all."""
    (x_train, y_train), _ = load_mnist()
    model = build_model(DENSE_MODEL, seed=0)
    trainer = Trainer(model, x_train, y_train, DENSE_TRAINING)
    try:
        trainer.run(steps=300)
    finally:
        trainer.close()
    path = tmp_path_factory.mktemp("model") / "quick.npz"
    save_model(model, path)
    return model, path


def test_a_sample_drawn_live_reads_as_its_replay(browser, server, quick_model):
    model, path = quick_model
    committed = load_canvas_set()
    drawings = plan(PER_CLASS, SEED)
    assert len(drawings) == len(committed)
    assert [d.label for d in drawings] == committed.labels.tolist()  # the committed set's plan
    context, page, pen = open_test_page(browser, server.url, path)
    try:
        shown, sent = [], []
        for d in drawings[:SAMPLE]:
            data_url = pen.draw(d)  # the PNG the canvas sent (checked against its toDataURL)
            shown.append(int(pen.answer()))
            sent.append(base64.b64decode(data_url.split(",", 1)[1]))
            pen.clear()
        assert_no_exception(page)
    finally:
        context.close()
    labels = committed.labels[:SAMPLE]
    live = replay(model, CanvasSet(committed.files[:SAMPLE], sent, labels, committed.styles[:SAMPLE]))
    stored = replay(model, CanvasSet(committed.files[:SAMPLE], committed.pngs[:SAMPLE], labels,
                                     committed.styles[:SAMPLE]))
    assert live.predicted.tolist() == shown, "the page's answers differ from the replay of what it received"
    assert stored.predicted.tolist() == shown, "the committed PNGs read differently from the live drawings"
    for png in sent:  # the set's smaller PNGs hold exactly the pixels the page decodes
        assert np.array_equal(pixels(small_png(png)), pixels(png))
    same = sum(np.array_equal(pixels(a), pixels(b)) for a, b in zip(sent, committed.pngs[:SAMPLE]))
    record("canvas_set_live_pixel_identical", f"{same}/{SAMPLE}")
    record("canvas_set_live_answers", shown)
