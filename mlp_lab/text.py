"""Text from users is text: link values, file names, file contents and names a student
typed, made safe to put inside Streamlit Markdown (toasts, st.error, captions, help).

Streamlit renders those strings as GitHub-flavoured Markdown plus its own syntax
(``:red[...]`` colours and other ``:name[...]`` directives, ``:material/icon:``,
``$maths$``, emoji shortcodes). A link such as ``?lesson=[Log in](http://evil.example)``
would otherwise show a clickable link, load an image, or print red bold text in every
browser that opens it. CommonMark lets a backslash escape any ASCII punctuation, so
``escape_markdown`` puts one before each: the text then shows exactly as typed, and no
directive, link, image, autolink (``www.``, ``http:``, ``a@b.c``), HTML tag, table, maths
or icon can start. No Streamlit here: tests call it without a browser.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"
NAME_CHARS = 60  # a file or model name in a message
VALUE_CHARS = 40  # a value from a link in a message
MESSAGE_CHARS = 600  # a whole message (a file's own error text included)

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85\v\f]+")
WORD_JOINER = "\u2060"  # invisible: breaks an autolink's pattern, not the text's look
_AUTOLINK = re.compile(r"(https?:(?=//)|www(?=\.)|@)", re.IGNORECASE)


def shorten(text, limit: int) -> str:
    """``text`` (anything: it becomes a str) in at most ``limit`` characters, cut with "…";
    line breaks become spaces, and invisible control and direction characters go (a
    right-to-left override could make a name read backwards)."""
    text = _LINE_BREAKS.sub(" ", str(text))
    text = "".join(c for c in text if c in " \t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    text = text.replace("\t", " ")
    if len(text) > limit:
        text = text[:max(limit - 1, 0)].rstrip() + ELLIPSIS
    return text


def escape_markdown(text) -> str:
    """``text`` as Markdown that Streamlit shows literally (no truncation): a backslash
    before every ASCII punctuation character, line breaks as spaces. Streamlit's GFM also
    turns ``http://``, ``www.`` and ``a@b.c`` found in the parsed *text* into links (after
    the escapes are read), so an invisible word joiner goes inside each of those."""
    text = shorten(text, len(str(text)))
    text = _AUTOLINK.sub("\\1" + WORD_JOINER, text)
    return _PUNCTUATION.sub(r"\\\1", text)


def plain(text, limit: int = MESSAGE_CHARS) -> str:
    """User-supplied ``text`` cut to ``limit`` characters, then escaped: ready to go inside
    any Streamlit Markdown string (``st.toast(plain(message))``)."""
    return escape_markdown(shorten(text, limit))


def quoted(text, limit: int = VALUE_CHARS, marks: str = "''") -> str:
    """A value for a plain-text message, in quotes (``marks``: the opening and closing
    one) and cut to ``limit`` characters. Escape the whole message with ``plain`` before
    showing it."""
    return f"{marks[0]}{shorten(text, limit)}{marks[-1]}"


def shown(markdown: str) -> str:
    """What ``escape_markdown``'s output shows on screen (its backslashes gone): for tests
    reading an element's Markdown body, and for logs."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")
