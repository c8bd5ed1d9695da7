"""Rebuild canvas_set/digits.zip: digits drawn with the mouse on the Test page's real
canvas (`streamlit run dashboard.py`, page Test) in Debian's Chromium.

    python -m canvas_set.make_set [--per-class 60] [--seed 14] [--out canvas_set/digits.zip]
                                  [--model quick.npz] [--url http://127.0.0.1:8611]

Each drawing comes from ``canvas_set.pens`` (a style of the digit, slanted, scaled,
placed, wobbled, at some speed, in one or more strokes), is drawn with
``page.mouse`` on ``canvas.upper-canvas``, and the PNG the canvas sent to Python over the
websocket is saved as it came (``canvas_set.browser.CanvasPen``); then Clear is pressed,
as a user does. With ``--model`` the model file is uploaded on the Model page first, and
at the end the answer the page showed for each drawing is compared with the offline
replay of the saved PNG (``mlp_lab.canvas_set.replay``): they must all agree.

Without ``--url`` a server is started on a free port (``MLP_LAB_SERVER_PORTS=8611-8619``
restricts it to a range). Needs Chromium on the PATH and the playwright package; never
runs ``playwright install``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))  # the browser tests' helpers

from browser_ui import go  # noqa: E402

from canvas_set.browser import VIEWPORT, CanvasPen  # noqa: E402
from canvas_set.pens import plan  # noqa: E402
from mlp_lab.canvas_set import small_png  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # as tests/browser/conftest.py
PER_CLASS, SEED = 56, 14  # the committed set: 560 drawings
ZIP_DATE = (2026, 12, 2, 0, 0, 0)  # fixed: the same drawings give the same zip


def open_test_page(browser, url: str, model: Path | None = None):
    """A fresh context on the app, the model uploaded if given, on the Test page:
    ``(context, page, pen)``."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    pen = CanvasPen(page)  # listens before the page opens its websocket
    page.goto(url)
    page.get_by_role("heading", name="MLP Lab").first.wait_for()
    if model is not None:
        upload_model(page, model)
    go(page, "Test")
    pen.canvas().wait_for()
    return context, page, pen


def upload_model(page, model: Path) -> None:
    """Load a model file as a student does: Model page, *Upload a model*."""
    page.locator("input[type=file]").set_input_files(str(model))
    page.get_by_text(f"Loaded {model.name}").first.wait_for(timeout=60_000)


def write_zip(out: Path, rows: list[tuple[str, int, str, str, bytes]]) -> None:
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["file", "label", "style", "sent_sha256"])
    for name, label, style, sha, _ in rows:
        writer.writerow([name, label, style, sha])
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, _, _, _, png in rows:  # PNGs are compressed already: stored as they are
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), png, compress_type=zipfile.ZIP_STORED)
        archive.writestr(zipfile.ZipInfo("labels.csv", ZIP_DATE), table.getvalue(),
                         compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=ROOT / "canvas_set" / "digits.zip")
    parser.add_argument("--model", type=Path, help="upload this model first and check the page's answers")
    parser.add_argument("--url", help="a running server (default: start one)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (only to draw)

    from loadtest.server import Server  # noqa: PLC0415

    drawings = plan(args.per_class, args.seed)
    server = None if args.url else Server()
    url = args.url or server.url
    rows, shown = [], []
    started = time.perf_counter()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            context, page, pen = open_test_page(browser, url, args.model)
            for i, d in enumerate(drawings):
                for attempt in range(3):
                    try:
                        data_url = pen.draw(d)
                        answer = pen.answer() if args.model else ""
                        pen.clear()
                        break
                    except Exception as exc:  # noqa: BLE001 (a lost click: start a fresh page, draw again)
                        print(f"  {i}: attempt {attempt + 1} failed ({exc}); fresh page", flush=True)
                        context.close()
                        context, page, pen = open_test_page(browser, url, args.model)
                else:
                    raise RuntimeError(f"drawing {i} failed three times")
                sent = base64.b64decode(data_url.split(",", 1)[1])
                png = small_png(sent)  # the same pixels (checked), a third of the bytes
                rows.append((f"{i:04d}_{d.label}.png", d.label, d.style,
                             hashlib.sha256(sent).hexdigest(), png))
                shown.append(answer)
                if i % 25 == 0 or i == len(drawings) - 1:
                    print(f"{i + 1}/{len(drawings)} drawn, {time.perf_counter() - started:.0f} s, "
                          f"{sum(len(r[-1]) for r in rows) / len(rows):.0f} bytes per PNG", flush=True)
            context.close()
            browser.close()
    finally:
        if server is not None:
            server.stop()
    write_zip(args.out, rows)
    print(f"wrote {args.out}: {len(rows)} drawings, {args.out.stat().st_size / 1e6:.2f} MB")

    if args.model:
        from mlp_core.persistence import load_model  # noqa: PLC0415

        from mlp_lab.canvas_set import load_canvas_set, replay  # noqa: PLC0415

        model, _ = load_model(args.model)
        result = replay(model, load_canvas_set(args.out))
        page_says = np.array([int(a) for a in shown])
        agree = int((page_says == result.predicted).sum())
        print(f"the Test page's answer equals the offline replay for {agree} of {len(shown)} drawings "
              f"(this model: {result.accuracy:.1%} right)")
        if agree != len(shown):
            print("disagree at:", [rows[i][0] for i in np.flatnonzero(page_says != result.predicted)])
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
