"""Helpers for the browser tests: navigate, read metrics, screenshots, measurements."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The README's pictures. Tests write here only with --update-screenshots (see the
# `screenshot` fixture in conftest.py); otherwise into a temporary folder.
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
PAGE_TITLES = {"Model": "MLP Lab", "Train": "Train", "Weights": "Weights", "Test": "Test",
               "Lessons": "Lessons", "Notebook vs modern": "Notebook vs modern",
               "Why this answer": "Why this answer", "Inside the network": "Inside the network",
               "Replay": "Replay", "NumPy vs Keras": "NumPy vs Keras"}


def open_page(browser, url: str):
    """A fresh browser context (so a fresh Streamlit session) on the app's first page:
    ``(context, page)``; close the context when done."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.get_by_role("heading", name="MLP Lab").first.wait_for()
    return context, page


def go(page, name: str) -> None:
    """Click a page in the sidebar navigation and wait for its title."""
    page.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()
    page.get_by_role("heading", name=PAGE_TITLES[name], exact=True).first.wait_for()


def choose(page, label: str, option: str, attempts: int = 5) -> None:
    """Pick ``option`` in the selectbox ``label``: open its list, click the option and wait
    until the box shows it. Tried again if the list closed before the click: a live part of
    the page (a fragment refreshing every few seconds) may redraw meanwhile and close it,
    and typing + Enter then kept the old value."""
    from playwright.sync_api import Error, expect

    combobox = page.get_by_role("combobox", name=label)  # its input shows the value
    for attempt in range(attempts):
        try:
            combobox.click()
            page.get_by_role("option", name=option).first.click(timeout=5_000)
            expect(combobox).to_have_value(re.compile(re.escape(option)), timeout=5_000)
            return
        except (AssertionError, Error):
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")


def assert_no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, "an exception box is on the page"
    assert page.get_by_text("Something went wrong").count() == 0, "the friendly error box is shown"


def metric_value(page, label: str) -> str:
    metric = page.get_by_test_id("stMetric").filter(has_text=label).first
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def save_screenshot(page, name: str, height: int | None = None, *, folder: Path) -> Path:
    """Save <folder>/<name>.png (Streamlit scrolls inside its own container, so a taller
    viewport, not full_page, shows more of a page)."""
    path = folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    for button in page.locator('[data-testid="stToast"] button').all():  # toasts hide content
        try:
            button.click(timeout=1000)
        except Exception:  # noqa: BLE001 (it closed by itself meanwhile)
            pass
    size = page.viewport_size  # the page's own width (a tablet, a phone), taller
    if height:
        page.set_viewport_size({"width": size["width"], "height": height})
        page.wait_for_timeout(700)  # let charts re-layout
    png = page.screenshot()
    _save_small_png(png, path)
    if height:
        page.set_viewport_size(size)
    return path


def record(name: str, value) -> None:
    """Print a measurement; also add it to $MLP_LAB_MEASUREMENTS (a JSON file) if set."""
    print(f"MEASURED {name}: {value}")
    target = os.environ.get("MLP_LAB_MEASUREMENTS")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = value
        path.write_text(json.dumps(data, indent=2))


def _save_small_png(png: bytes, path: Path) -> None:
    """256 colours without dithering: the same picture at about a third of the bytes, so
    regenerated screenshots do not bloat the repository."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
