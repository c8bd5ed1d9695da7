"""mlp_lab.text: any text a user supplies shows literally inside Streamlit Markdown.

A CommonMark renderer (markdown-it-py) checks here that the escaped text makes no link,
image, emphasis, code, HTML or table; tests/browser/test_hostile_text_browser.py checks
Streamlit's own renderer (GFM, :red[...] directives, :material/ icons, maths) in Chromium.
"""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from mlp_lab.choices import offered
from mlp_lab.text import ELLIPSIS, WORD_JOINER, escape_markdown, plain, quoted, shorten, shown

PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")
PAYLOAD = ("[Log in here](http://evil.example/login) ![x](http://evil.example/track.png) "
           ":red[**SERVER COMPROMISED**]")
ADVERSARIAL = [
    PAYLOAD,
    "__meta__", "**bold** _it_ *it* ~~gone~~ `code` ```fence```",
    "# Heading", "> quote", "- item", "1. item", "+ item", "---", "| a | b |\n|---|---|\n| 1 | 2 |",
    "<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "&lt;b&gt;", "&#58;",
    "<http://evil.example>", "www.evil.example", "http://evil.example", "mail@evil.example",
    ":material/warning: :smile: :red[red] :blue-background[x] :rainbow[x] :small[x] :help[x]",
    "$x^2$ $$\\int$$", "\\*not bold\\*", "\\", "line one\nline two\r\n\n# three",
    "[x][ref]\n\n[ref]: http://evil.example", "![alt][img]\n[img]: http://evil.example/a.png",
    "trailing backslash \\", "\u202eevil\u202c", "zero\u200bwidth", "a\x00b\x07c",
]


def render(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).renderInline(markdown)


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_escaped_text_renders_as_the_same_text(text):
    html = render(escape_markdown(text))
    assert not re.search(r"<(a|img|em|strong|code|s|del|script|table|h\d)\b", html), html
    assert "<" not in html.replace("&lt;", "")  # no tag at all: every < is text
    # what shows is the text itself (line breaks as spaces, invisible controls gone)
    assert shown(escape_markdown(text)) == shorten(text, len(text))


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_round_trips_and_no_punctuation_is_left_unescaped(text):
    escaped = escape_markdown(text)
    assert shown(escaped) == shorten(text, len(text))
    assert "\n" not in escaped and "\r" not in escaped
    # read as Markdown reads it: a backslash escapes the punctuation after it; no other
    # punctuation is left to start any syntax
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            assert i + 1 < len(escaped) and PUNCTUATION.fullmatch(escaped[i + 1]), escaped
            i += 2
        else:
            assert not PUNCTUATION.fullmatch(escaped[i]), escaped
            i += 1


def test_every_punctuation_character_is_escaped():
    for c in "\\*_`[]()#!<>|~$:&.+-={}\"'%^,;?/":
        assert escape_markdown(c) == "\\" + c, c
    assert escape_markdown("@") == "\\@" + WORD_JOINER


# Streamlit's GFM finds these in the parsed text (escapes already read), as the bundle's
# mdast-util-gfm-autolink-literal does: they must not match there.
GFM_URL = re.compile(r"(https?:\/\/|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE)
GFM_EMAIL = re.compile(r"(?<![^\s\W])([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)")


@pytest.mark.parametrize("text", ["http://evil.example", "HTTPS://evil.example/a", "www.evil.example",
                                  "WWW.Evil.example", "mail@evil.example", "go to http://x.y now"])
def test_no_autolink_survives_in_the_parsed_text(text):
    parsed = re.sub(r"\\(.)", r"\1", escape_markdown(text))  # the text node Markdown makes
    assert not GFM_URL.search(parsed) and not GFM_EMAIL.search(parsed), parsed
    assert parsed.replace(WORD_JOINER, "") == text


def test_the_streamlit_payload_keeps_no_markdown():
    escaped = plain(PAYLOAD)
    assert ":red[" not in escaped and "](" not in escaped and "**" not in escaped
    assert "http://" not in escaped and "\\:red\\[\\*\\*SERVER" in escaped
    assert shown(escaped) == PAYLOAD


def test_shorten_cuts_with_an_ellipsis():
    assert shorten("a" * 10, 10) == "a" * 10
    assert shorten("a" * 11, 10) == "a" * 9 + ELLIPSIS
    assert len(shorten("x" * 100_000, 40)) == 40
    assert shorten("two\nlines", 80) == "two lines"
    assert shorten("\u202eevil", 80) == "evil"  # no right-to-left override
    assert shorten(12345, 3) == "12" + ELLIPSIS  # anything becomes text


def test_plain_and_quoted_limits():
    assert shown(plain("y" * 100_000, 50)) == "y" * 49 + ELLIPSIS
    assert len(plain("[" * 1000, 10)) == 2 * 9 + 1  # nine escaped brackets and the ellipsis
    assert quoted("z" * 100) == "'" + "z" * 39 + ELLIPSIS + "'"
    assert quoted("name", marks="“”") == "“name”"


def test_offered_keeps_only_the_options():
    assert offered("adam", ("sgd", "adam"), "sgd") == "adam"
    assert offered("evil", ("sgd", "adam"), "sgd") == "sgd"
    assert offered(3, range(10), 0) == 3
    assert offered("3", range(10), 0) == 0  # a string is not a digit of the menu
    assert offered(True, (0, 1), 0) == 0  # nor is True the option 1
    assert offered(None, (1, 2), 1) == 1


def test_the_canvas_log_filter_keeps_one_line(caplog):
    from mlp_lab.session import OneLineLog

    logger = logging.getLogger("streamlit.components.v2.bidi_component.serialization")
    assert any(isinstance(f, OneLineLog) for f in logger.filters)
    try:
        raise ValueError("Expecting value: line 1 column 1 (char 0)")
    except ValueError as exc:
        record = logging.LogRecord(logger.name, logging.WARNING, __file__, 1,
                                   "Failed to deserialize component state from frontend: %s",
                                   (exc,), (type(exc), exc, exc.__traceback__))
    assert OneLineLog().filter(record)
    assert record.exc_info is None and "Traceback" not in logging.Formatter().format(record)
    assert record.getMessage().endswith("[ValueError]")
