"""The Test page's drawing comes from the network: the canvas component's state, sent by the
browser over the websocket (``{"drawing": {"raw": ..., "data": "data:image/png;base64,..."}}``).
A hand-made websocket message can put anything there. ``mlp_lab.drawing.canvas_pixels`` /
``digit_from_canvas_state`` parse it; they must never raise and never decode a huge image.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlp_lab.drawing import (CANVAS_SIZE, MAX_CANVAS_SIDE, MAX_DATA_URL_CHARS, PNG_PREFIX,
                             canvas_pixels, digit_from_canvas_state)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return PNG_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def drawn_one(size: int = CANVAS_SIZE) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    image.paste((255, 255, 255, 255), (size // 2 - size // 25, size // 7,
                                       size // 2 + size // 25, size - size // 7))
    return image


def state(data) -> dict:
    return {"drawing": {"raw": {"objects": []}, "data": data}}


def assert_well_formed(result) -> None:
    image, message = result
    if image is None:
        assert message is None or (isinstance(message, str) and message)
    else:
        assert message is None
        assert image.shape == (28, 28) and image.dtype == np.float32
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


# --- what the real component sends -----------------------------------------------------------
def test_a_real_drawing_gives_the_networks_image():
    image, message = digit_from_canvas_state(state(png_url(drawn_one())))
    assert message is None and image.shape == (28, 28)
    assert image.max() == 1.0 and image[:, :10].max() == 0  # a centred vertical bar: a "1"


def test_a_high_density_screen_sends_twice_the_pixels_and_that_works_too():
    image, message = digit_from_canvas_state(state(png_url(drawn_one(2 * CANVAS_SIZE))))
    assert message is None and image.shape == (28, 28)


def test_nothing_drawn_yet_is_not_an_error():
    for nothing in (None, {}, {"drawing": None}, state(None)):
        assert canvas_pixels(nothing) == (None, None)
        image, message = digit_from_canvas_state(nothing)
        assert image is None and "Draw a digit" in message


def test_an_empty_canvas_says_so():
    blank = Image.new("RGBA", (CANVAS_SIZE, CANVAS_SIZE), (0, 0, 0, 255))
    image, message = digit_from_canvas_state(state(png_url(blank)))
    assert image is None and "empty" in message


# --- what a hand-made message can send ------------------------------------------------------
def test_a_huge_image_is_refused_from_its_header_before_decoding():
    # 20000 x 20000 pixels of one colour compress to a few kB of PNG but would need 1.6 GB
    # of RGBA once decoded: refused from the header's size, before Pillow decodes anything.
    side = 20_000
    image = Image.new("1", (side, side))
    url = png_url(image)
    assert len(url) < MAX_DATA_URL_CHARS
    pixels, message = canvas_pixels(state(url))
    assert pixels is None and "could not be read" in message
    pixels, message = canvas_pixels(state(png_url(Image.new("L", (MAX_CANVAS_SIDE + 1, 10)))))
    assert pixels is None and message


def test_an_oversized_message_is_refused_without_decoding_it():
    pixels, message = canvas_pixels(state(PNG_PREFIX + "A" * (MAX_DATA_URL_CHARS + 4)))
    assert pixels is None and "too large" in message


@pytest.mark.parametrize("data", [
    "", "data:", PNG_PREFIX, PNG_PREFIX + "!!!not base64!!!", PNG_PREFIX + "iVBORw0KGgo=",
    "data:image/jpeg;base64,/9j/4AAQ", "data:image/svg+xml;utf8,<svg/>", "http://example.com/x.png",
    PNG_PREFIX + base64.b64encode(b"GIF89a" + bytes(100)).decode(),
    PNG_PREFIX + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(50)).decode(),
    12, 3.5, [], ["data"], {"data": "x"}, b"bytes", True,
])
def test_malformed_drawings_become_a_message(data):
    pixels, message = canvas_pixels(state(data))
    assert pixels is None and "Press Clear" in message
    assert_well_formed(digit_from_canvas_state(state(data)))


def test_a_png_of_another_kind_is_converted_to_rgba():
    for mode in ("L", "RGB", "P", "LA", "I;16", "1"):
        pixels, message = canvas_pixels(state(png_url(drawn_one().convert(mode))))
        assert message is None and pixels.shape == (CANVAS_SIZE, CANVAS_SIZE, 4)
        assert pixels.dtype == np.uint8


# --- fuzzing ----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=12)


@FUZZ
@given(json_values)
def test_any_json_state_is_handled(value):
    assert_well_formed(digit_from_canvas_state(value))
    assert_well_formed(digit_from_canvas_state({"drawing": value}))
    assert_well_formed(digit_from_canvas_state({"drawing": {"raw": value, "data": value}}))
    json.dumps(canvas_pixels(value)[1])  # the message is plain text


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_behind_the_png_prefix_are_handled(raw):
    assert_well_formed(digit_from_canvas_state(state(PNG_PREFIX + base64.b64encode(raw).decode())))


@FUZZ
@given(st.text(max_size=300))
def test_any_text_behind_the_png_prefix_is_handled(text):
    assert_well_formed(digit_from_canvas_state(state(PNG_PREFIX + text)))
    assert_well_formed(digit_from_canvas_state(state(text)))


@FUZZ
@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1"]),
       st.binary(min_size=0, max_size=64 * 64 * 4), st.data())
def test_valid_and_damaged_pngs_of_any_size_are_handled(width, height, mode, fill, data):
    image = Image.new(mode, (width, height))
    bands = len(image.getbands())
    need = width * height * bands
    if mode != "1" and fill:
        image.frombytes((fill * (need // len(fill) + 1))[:need])
    url = png_url(image)
    assert_well_formed(digit_from_canvas_state(state(url)))
    raw = bytearray(base64.b64decode(url[len(PNG_PREFIX):]))
    cut = data.draw(st.integers(0, len(raw)))  # truncated, or one byte flipped
    flipped = bytearray(raw)
    if flipped:
        i = data.draw(st.integers(0, len(flipped) - 1))
        flipped[i] ^= data.draw(st.integers(1, 255))
    for damaged in (bytes(raw[:cut]), bytes(flipped)):
        assert_well_formed(digit_from_canvas_state(
            state(PNG_PREFIX + base64.b64encode(damaged).decode())))
