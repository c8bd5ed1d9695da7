"""Is memory given back when students leave? ``python -m loadtest.memory``

Starts a real ``streamlit run dashboard.py`` (short windows: a closed tab's lab leaves
memory after 3 s), opens one ordinary session (MNIST loads, the first pages warm up) and
closes it, then opens and closes the largest network the app allows
(``?model=dense&hidden=1024-1024-1024-1024&batch=512``) ``cycles`` times over Streamlit's
own websocket protocol, and reports the server's RSS: before the loop, at its peak, and
``settle`` seconds after the last close. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from loadtest.protocol import StudentSession
from loadtest.server import Server

BIG_LINK = "model=dense&hidden=1024-1024-1024-1024&batch=512"
MEMORY_ENV = {"MLP_LAB_RECONNECT_SECONDS": "3", "MLP_LAB_IDLE_IN_MEMORY_SECONDS": "3"}


async def _open_close(ws_url: str, number: int, query: str, errors: list) -> None:
    session = StudentSession(ws_url, number, record=lambda kind, seconds: None, error=errors.append)
    session.query_string = query
    await session.connect()
    try:
        await session.open()
    finally:
        await session.close()


async def open_close_loop(server: Server, cycles: int = 20, settle: float = 18.0,
                          query: str = BIG_LINK) -> dict:
    ws_url = server.url.replace("http://", "ws://") + "/_stcore/stream"
    errors: list[str] = []
    await _open_close(ws_url, -1, "", errors)  # MNIST, Plotly and the pages warm up
    await asyncio.sleep(8)  # that lab leaves memory (3 s + the saver's second)
    before = server.rss_mb()
    peak = before
    started = time.monotonic()
    for i in range(cycles):
        await _open_close(ws_url, i, query, errors)
        peak = max(peak, server.rss_mb())
    loop_seconds = time.monotonic() - started
    samples = []
    end = time.monotonic() + settle
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        rss = server.rss_mb()
        peak = max(peak, rss)
        samples.append(round(rss))
    after = server.rss_mb()
    log = server.log()
    return {"cycles": cycles, "loop_seconds": round(loop_seconds, 1), "rss_before_mb": round(before),
            "rss_peak_mb": round(peak), "rss_after_mb": round(after),
            "after_minus_before_mb": round(after - before), "settle_seconds": settle,
            "rss_samples_mb": samples, "errors": errors,
            "labs_left_memory": log.count("left memory"), "tracebacks": log.count("Traceback")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--settle", type=float, default=18.0)
    args = parser.parse_args()
    server = Server(env=MEMORY_ENV)
    try:
        report = asyncio.run(open_close_loop(server, args.cycles, args.settle))
    finally:
        server.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
