"""The teacher's Class page in Chromium, with two student browsers: the code gate, both
students listed with their steps and accuracies while they train, a challenge's
leaderboard measured by the server, a pushed lesson that each student sees as a banner and
joins (their trained model kept in My models first). Screenshots: the Class page, the
leaderboard, the banner.

The board and the leaderboard are Streamlit dataframes (drawn on a canvas): the test reads
them as a teacher would take them away, with the table's own "Download as CSV" button."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from browser_ui import VIEWPORT, assert_no_exception, choose, go, open_page
from loadtest.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = "browser-teacher-code"


@pytest.fixture(scope="module")
def class_server(chromium_path):
    server = Server(max_runs=2, env={"MLP_LAB_TEACHER_CODE": CODE, "MLP_LAB_SAVE_SECONDS": "2"})
    yield server
    server.stop()


def teacher_page(browser, url: str):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    # Streamlit saves a table through the File System Access API when the browser has one
    # (a save dialog); without it, through an ordinary download, which Playwright catches.
    context.add_init_script("delete window.showSaveFilePicker;")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{url}/class")  # the page's own address (the first visit also loads MNIST)
    page.get_by_role("heading", name="Class", exact=True).wait_for(timeout=120_000)
    page.get_by_test_id("stSidebar").get_by_text("Steps trained").wait_for()
    expect(page.locator("[data-stale=true]")).to_have_count(0)
    return context, page


def table(page, index: int = 0) -> list[dict]:
    """The index-th dataframe on the page, as its CSV download (tried again if the live
    refresh redraws it under the mouse)."""
    for _ in range(5):
        # The table's element, holding its toolbar (shown while the mouse is over it).
        frame = page.get_by_test_id("stElementContainer").filter(has=page.get_by_test_id("stDataFrame")).nth(index)
        try:
            frame.hover()
            with page.expect_download(timeout=10_000) as download:
                frame.get_by_role("button", name="Download as CSV").click(timeout=5_000)
            text = Path(download.value.path()).read_text(encoding="utf-8-sig")
            return list(csv.DictReader(io.StringIO(text)))
        except Exception:  # noqa: BLE001 (redrawn meanwhile: try again)
            time.sleep(1)
    raise AssertionError("could not download the table")


def maybe_table(page, index: int) -> list[dict]:
    """The table's rows, or [] if it could not be read this time (the board's refresh
    every 5 s redraws the tables, and one may come or go meanwhile): the caller tries again
    until its deadline."""
    try:
        return table(page, index)
    except AssertionError:
        return []


def rows_until(page, check, index: int = 0, timeout: float = 180.0, column: str | None = None) -> list[dict]:
    """The table's rows once ``check`` passes. With ``column``: the first table on the page
    that has that column (the leaderboard is not always the second table while it fills)."""
    deadline = time.monotonic() + timeout
    while True:
        if column is None:
            rows = maybe_table(page, index)
        else:
            tables = page.get_by_test_id("stElementContainer").filter(has=page.get_by_test_id("stDataFrame"))
            found = (maybe_table(page, i) for i in range(tables.count()))
            rows = next((t for t in found if t and column in t[0]), [])
        if check(rows):
            return rows
        assert time.monotonic() < deadline, f"the table never showed what was expected: {rows}"
        time.sleep(2)


def number(cell: str) -> float:
    """A table cell as a number ("2,000" or "2000")."""
    return float(cell.replace(",", ""))


def set_name(page, name: str) -> None:
    page.get_by_text("Your name in class:").click()
    page.get_by_label("Name shown in class", exact=True).fill(name)
    page.get_by_role("button", name="Save the name").click()
    expect(page.get_by_text(f"Your name in class: {name}")).to_be_visible()


def test_two_students_train_the_teacher_sees_both_pushes_a_lesson_and_both_join(browser, class_server, screenshot):
    url = class_server.url
    tctx, teacher = teacher_page(browser, url)
    students = []
    try:
        # Locked: a password field, no student data; a wrong code is refused.
        expect(teacher.get_by_label("Teacher code", exact=True)).to_have_attribute("type", "password")
        assert teacher.get_by_test_id("stDataFrame").count() == 0
        teacher.get_by_label("Teacher code", exact=True).fill("not-the-code")
        teacher.get_by_role("button", name="Open the Class page").click()
        expect(teacher.get_by_text("That is not the teacher code.")).to_be_visible()
        assert teacher.get_by_test_id("stDataFrame").count() == 0
        assert "code" not in teacher.url
        teacher.get_by_label("Teacher code", exact=True).fill(CODE)
        teacher.get_by_role("button", name="Open the Class page").click()
        teacher.get_by_text("The class at a glance").wait_for()
        assert CODE not in teacher.url
        # A challenge first, so the students' runs are measured for it (no step limit: Ada's
        # run below is stopped by hand, after however many steps it reached by then).
        teacher.get_by_text("Set a challenge").click()
        choose(teacher, "At most this many steps", "no limit")
        teacher.get_by_role("button", name="Start this challenge").click()
        expect(teacher.get_by_text("Now: Best test accuracy (since", exact=False)).to_be_visible()

        # Ada starts the longest run the slider offers and stops it once the teacher's board
        # (refreshed every 5 s) has shown her training: a run of fixed length can end before
        # the board catches it (500 steps take 3 s, 2,000 steps 8 s on a quiet machine). The
        # server ends a run after 120 s at the latest. Grace trains 500 steps.
        for name in ("Ada", "Grace"):
            context, page = open_page(browser, url)
            students.append((name, context, page))
            set_name(page, name)
            page.get_by_text("Class challenge: Best test accuracy.").wait_for()
            go(page, "Train")
            thumb = page.get_by_test_id("stSlider").filter(has_text="Steps").get_by_role("slider")
            thumb.focus()
            if name == "Ada":
                thumb.press("End")
                expect(thumb).to_have_attribute("aria-valuetext", "50,000")
            else:
                for _ in range(2):  # 2,000 -> 1,000 -> 500 steps: enough for 90 % on a busy machine
                    thumb.press("ArrowLeft")
                expect(thumb).to_have_attribute("aria-valuetext", "500")
                # another learning rate: her own curve and point on the teacher's charts
                rate = page.get_by_test_id("stSlider").filter(has_text="Learning rate").get_by_role("slider")
                rate.focus()
                rate.press("ArrowRight")
                expect(rate).to_have_attribute("aria-valuetext", "0.005")
        for _, _, page in students:  # both set up first: Grace's run starts while Ada's goes
            page.get_by_role("button", name="Train", exact=True).click()

        # While Ada trains: both listed, Ada training, past her first steps (the first run of
        # a server first gets the training images ready, listed as training at step 0).
        rows_until(teacher, lambda rows: {"Ada", "Grace"} <= {r["Student"] for r in rows}
                   and any(r["State"] == "training" and r["Steps"] and number(r["Steps"]) >= 100
                           for r in rows if r["Student"] == "Ada"), timeout=100)
        ada, grace = students[0][2], students[1][2]
        ada.get_by_role("button", name="Stop", exact=True).click()
        expect(ada.get_by_test_id("stSidebar").get_by_text("Not training")).to_be_visible(timeout=60_000)
        grace.get_by_text("Finished: trained 500 steps").first.wait_for(timeout=180_000)
        rows = rows_until(teacher, lambda rows: all(
            any(r["Student"] == n and r["State"] == "not training" and number(r["Steps"]) >= 100
                and r["Validation %"] for r in rows) for n in ("Ada", "Grace")))
        steps = {r["Student"]: number(r["Steps"]) for r in rows}
        assert steps["Grace"] == 500
        for name in ("Ada", "Grace"):
            row = next(r for r in rows if r["Student"] == name)
            assert float(row["Validation %"]) > 90 and row["State"] == "not training"
            assert row["Network"] == "Dense MLP 784-256-128-10 (relu)"
            assert float(row["Learning rate"]) == (0.005 if name == "Grace" else 0.002)
        # The leaderboard: both runs, measured by the server on the test images.
        board = rows_until(teacher, lambda rows: {"Ada", "Grace"} <= {r["Student"] for r in rows},
                           column="Place")
        assert [r["Place"] for r in board] == ["1", "2"]
        assert all(float(r["Test %"]) > 90 and number(r["Steps"]) == steps[r["Student"]] for r in board)
        assert float(board[0]["Test %"]) >= float(board[1]["Test %"])
        time.sleep(1)
        screenshot(teacher, "class_page", height=2300)
        teacher.get_by_role("heading", name="Challenge").evaluate("e => e.scrollIntoView({block: 'start'})")
        screenshot(teacher, "class_leaderboard")

        # Move the class to lesson 3.
        choose(teacher, "Lesson to start", "Lesson 3")
        expect(teacher.get_by_text("He initialisation: the same network")).to_be_visible()  # its goal
        teacher.get_by_role("button", name="Push it to every student").click()
        teacher.get_by_text("Students see now").wait_for()
        for i, (name, _, page) in enumerate(students):
            banner = page.get_by_text("Your teacher started lesson 3 · A better start.")
            banner.wait_for(timeout=20_000)  # the banner's own refresh: no click needed
            if i == 0:
                screenshot(page, "class_banner")
            page.get_by_role("button", name="Join", exact=True).click()
            expect(page.get_by_text("Joined lesson 3 · A better start").first).to_be_visible()
            expect(banner).to_have_count(0)
            expect(page.get_by_test_id("stSidebar").get_by_text("Notebook net")).to_be_visible()
            expect(page.get_by_test_id("stSidebar").get_by_text("Steps trained: 0")).to_be_visible()
            go(page, "Model")
            expect(page.get_by_text("(before your teacher's lesson").first).to_be_visible()  # kept first
            assert_no_exception(page)
        rows_until(teacher, lambda rows: all(
            any(r["Student"] == n and r["Steps"] == "0" and r["Network"].startswith("Notebook") for r in rows)
            for n in ("Ada", "Grace")))
        assert_no_exception(teacher)
    finally:
        for _, context, _ in students:
            context.close()
        tctx.close()
