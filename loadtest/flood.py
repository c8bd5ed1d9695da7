"""One student floods the server with rerun requests while a class works: what do the
others feel? Side by side, the per-session rate limit on (the default) and off.

    python -m loadtest.flood [--sessions 8] [--training 2] [--rate 400]

The limit drops a session's rerun requests beyond ``MLP_LAB_RERUN_RATE`` a second (after a
burst of ``MLP_LAB_RERUN_BURST``) as they arrive (``mlp_lab/session.py``). Each case starts
its own server (127.0.0.1 only), runs the protocol class of
``loadtest.run`` (``--sessions`` students, one round) and, from the moment the first student
is in until the class is done, one more websocket client that sends ``--rate`` rerun
requests a second (~380 a second took other students' page switches to 21 s before the
limit). Printed: the honest students' p50/p95/max and errors, and how many requests the
flooder sent; the last line is the report as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from loadtest.protocol import StudentSession
from loadtest.run import LOAD_TEST_ENV, _run_protocol
from loadtest.server import Server


async def flood(ws_url: str, rate: float, stop: asyncio.Event) -> int:
    """Rerun requests at ``rate`` a second until ``stop``; returns how many were sent."""
    flooder = StudentSession(ws_url, 999, lambda kind, seconds: None, lambda text: None)
    await flooder.connect()
    await flooder.open()
    sent, started = 0, time.perf_counter()
    try:
        while not stop.is_set():
            await flooder.request_rerun()
            sent += 1
            ahead = sent / rate - (time.perf_counter() - started)
            await asyncio.sleep(max(0.0, ahead))
    finally:
        await flooder.close()
    return sent


async def one_case(env: dict, sessions: int, trainers: int, rate: float) -> dict:
    server = Server(env={**LOAD_TEST_ENV, **env})
    try:
        ws_url = server.url.replace("http://", "ws://") + "/_stcore/stream"
        stop = asyncio.Event()
        flooding = asyncio.create_task(flood(ws_url, rate, stop))
        report = await _run_protocol(server, sessions, trainers, 1, 0.3, 0)
        stop.set()
        sent = await flooding
        return {"p50_s": report["p50_s"], "p95_s": report["p95_s"], "max_s": report["max_s"],
                "interactions": report["interactions"], "errors": report["errors"],
                "error_list": report["error_list"][:5], "flood_requests": sent,
                "seconds": report["seconds_of_load"], "load_average_end": report["load_average_end"]}
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--training", type=int, default=2)
    parser.add_argument("--rate", type=float, default=400.0, help="rerun requests per second")
    args = parser.parse_args(argv)
    cases = {"limit on (default)": {},
             "limit off": {"MLP_LAB_RERUN_RATE": "1e9", "MLP_LAB_RERUN_BURST": "1000000000"}}
    results = {}
    for name, env in cases.items():
        results[name] = asyncio.run(one_case(env, args.sessions, args.training, args.rate))
        r = results[name]
        print(f"{name:20s} honest p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s, max {r['max_s']:.2f} s, "
              f"{r['interactions']} interactions, {r['errors']} errors; flooder sent "
              f"{r['flood_requests']:,} requests in {r['seconds']:.0f} s", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
