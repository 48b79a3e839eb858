#!/usr/bin/env python3
"""TLS load client for bench/server (issue #4), Python asyncio + ssl.

  idle      opens COUNT TLS connections (CONCURRENCY handshakes at a time), prints `ready N`,
            keeps them idle until the file GO exists, then prints `alive N` (connections the
            server has not closed) and closes them.
  handshake opens RATE new connections per second for SECONDS (open loop: each start is
            scheduled, not waiting for the previous one), measures TCP connect + TLS handshake
            of each and closes it; prints count, failures, p50/p90/p99/max in ms and how far
            the client fell behind its schedule.
"""

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import time


def context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True  # the certificate names IP 127.0.0.1
    return ctx


async def open_one(host, port, ctx):
    return await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)


async def idle(a):
    ctx = context(a.ca)
    sem = asyncio.Semaphore(a.concurrency)
    conns, failed = [], []

    async def one():
        async with sem:
            try:
                conns.append(await asyncio.wait_for(open_one(a.host, a.port, ctx), 30))
            except Exception as e:  # noqa: BLE001 - a benchmark counts failures, whatever they are
                failed.append(repr(e))

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(a.count)))
    took = time.monotonic() - t0
    proto = conns[0][1].get_extra_info("ssl_object") if conns else None
    version = f"{proto.version()} {proto.cipher()[0]}" if proto else "-"
    print(f"ready {len(conns)} failed {len(failed)} in {took:.1f}s ({version})", flush=True)
    if failed:
        print("first failure:", failed[0], flush=True)
    while not os.path.exists(a.go):
        await asyncio.sleep(0.1)
    # A connection the server closed has EOF (or an error) waiting; an idle open one times out.
    alive = 0
    for r, _ in conns:
        try:
            data = await asyncio.wait_for(r.read(1), 0.001)
            alive += 0 if data == b"" else 1
        except asyncio.TimeoutError:
            alive += 1
        except Exception:  # noqa: BLE001
            pass
    print(f"alive {alive}", flush=True)
    for _, w in conns:
        w.close()  # close_notify and FIN, as a client that is done would
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)


async def handshake(a):
    ctx = context(a.ca)
    loop = asyncio.get_running_loop()
    times, lags, failed = [], [], []

    async def one(due):
        start = loop.time()
        lags.append(start - due)
        try:
            _, w = await asyncio.wait_for(open_one(a.host, a.port, ctx), 10)
            times.append(loop.time() - start)
            w.close()
        except Exception as e:  # noqa: BLE001
            failed.append(repr(e))

    n = int(a.rate * a.seconds)
    t0 = loop.time() + 0.05
    tasks = []
    for i in range(n):
        due = t0 + i / a.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(due)))
    await asyncio.gather(*tasks)
    times.sort()

    def pct(p):
        return times[min(len(times) - 1, int(p / 100 * len(times)))] * 1000 if times else float("nan")

    print(
        f"handshakes {len(times)} failed {len(failed)} p50 {pct(50):.2f} p90 {pct(90):.2f} "
        f"p99 {pct(99):.2f} max {times[-1] * 1000 if times else float('nan'):.2f} ms "
        f"mean {statistics.mean(times) * 1000 if times else float('nan'):.2f} ms "
        f"client lag p99 {sorted(lags)[int(0.99 * len(lags))] * 1000:.2f} ms",
        flush=True,
    )
    if failed:
        print("first failure:", failed[0], flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["idle", "handshake"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--go", default="")
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args()
    asyncio.run(idle(a) if a.mode == "idle" else handshake(a))


if __name__ == "__main__":
    sys.exit(main())
