"""Text from users is text, in Streamlit's own Markdown renderer: a link whose lesson is
Markdown (a login link, a tracking image, :red[...] bold text) opens with a toast that
shows that text literally, and nothing of it becomes a link, an image or a request to
another server."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from browser_ui import VIEWPORT, assert_no_exception

pytestmark = pytest.mark.browser

FAVICON = "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/neurology/"
PAYLOAD = ("[Log in here](http://evil.example/login) ![x](http://evil.example/track.png) "
           ":red[**SERVER COMPROMISED**] :material/warning: www.evil.example $x^2$")


def test_a_markdown_link_value_shows_literally_in_the_toast(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{server.url}/?lesson={quote(PAYLOAD)}")
        toast = page.get_by_test_id("stToast").filter(has_text="Parts of this link were ignored")
        toast.wait_for()
        text = " ".join(toast.inner_text().replace("\u2060", "").split())  # (invisible joiners)
        # the value as typed, cut at 40 characters: brackets, parentheses, colons and all
        assert "there is no lesson called '[Log in here](http://evil.example/login…'." in text, text
        page.wait_for_timeout(1500)  # anything the toast would load has been asked for by now
        assert page.locator("a[href*='evil.example']").count() == 0
        external_images = page.evaluate(
            "() => [...document.images].map(i => i.src).filter(s => s && !s.startsWith('data:') "
            "&& new URL(s).hostname !== '127.0.0.1')")
        assert external_images == []
        # no red, bold or icon made from the text: the toast holds plain text only
        assert toast.locator("a, img, strong, b, [class*='material'], .katex").count() == 0
        assert_no_exception(page)
    finally:
        context.close()
    # Nothing but the app's own server. One known exception, not from the link: Streamlit
    # fetches the favicon dashboard.py asks for (page_icon=":material/neurology:") from
    # fonts.gstatic.com (offline it fails, harmlessly). Any other host fails the test.
    foreign = [url for url in requests if urlsplit(url).scheme in ("http", "https", "ws", "wss")
               and urlsplit(url).hostname != "127.0.0.1" and not url.startswith(FAVICON)]
    assert foreign == [], foreign
    assert "evil.example" not in {urlsplit(url).hostname for url in requests}
