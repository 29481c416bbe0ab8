"""Front query latency with 100,000 stored trials in PostgreSQL: HTTP API and storage.

Creates a private PostgreSQL database on 127.0.0.1:5432 (dropped at the end), loads a
synthetic study of N candidates scored on two devices with their precomputed rankings
(the loader of ``bench/query_storage.py``), then measures the front query for one device:

* directly through :func:`paretoedge.storage.get_front` (in process);
* through the HTTP API: a real ``paretoedge serve`` process (uvicorn) on a free loopback
  port, driven by a bounded load generator: first one client (sequential requests, the
  latency a user sees), then C concurrent clients in threads (httpx, keep-alive), each
  sending a fixed number of requests, so the total load is bounded.

Prints p50/p95/p99/max per scenario and the throughput of the concurrent run.

    python bench/query.py                      # 100k candidates, PostgreSQL
    python bench/query.py --candidates 20000 --requests 300 --clients 4
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEVICES = ["rpi4", "host"]
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("front rpi4, sort latency, 100 rows", {"device": "rpi4", "limit": 100}),
    (
        "front rpi4, sort accuracy, min_accuracy 0.85",
        {"device": "rpi4", "sort": "accuracy", "min_accuracy": 0.85, "limit": 100},
    ),
    (
        "front rpi4, max_latency 20 ms, max_size 20 MB, page 2",
        {"device": "rpi4", "max_latency_ms": 20.0, "max_size_mb": 20.0, "limit": 20, "offset": 20},
    ),  # fmt: skip
]


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)

    def q(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p * (len(s) - 1))))]

    return {
        "n": len(s),
        "p50": q(0.50),
        "p95": q(0.95),
        "p99": q(0.99),
        "max": s[-1],
        "mean": statistics.fmean(s),
    }


def _create_pg_database() -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"pe_query_bench_{uuid.uuid4().hex[:10]}"  # hex only: safe as an identifier
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _storage_args(params: dict[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in params.items() if k != "max_size_mb"}
    if "max_size_mb" in params:
        args["max_size_bytes"] = int(params["max_size_mb"] * 1e6)
    return args


def measure_storage(storage: Any, repeats: int) -> dict[str, Any]:
    from paretoedge.storage import get_front

    out = {}
    for label, params in QUERIES:
        args = _storage_args(params)
        for _ in range(5):
            get_front(storage, study="bench", **args)
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            page = get_front(storage, study="bench", **args)
            samples.append((time.perf_counter() - t) * 1e3)
        out[label] = {**_percentiles(samples), "total": page.total, "rows": len(page.entries)}
    return out


def start_server(url: str, home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    import httpx

    port = _free_port()
    env = {**os.environ, "PARETOEDGE_HOME": str(home)}
    env.pop("PARETOEDGE_API_TOKEN", None)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paretoedge.cli", "serve", "--storage", url, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return base, proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start: " + (home / "server.log").read_text())


def _http_run(base: str, params: dict[str, Any], *, clients: int, per_client: int) -> dict:
    import httpx

    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker() -> None:
        local = []
        with httpx.Client(base_url=base, timeout=30) as c:
            for _ in range(3):
                c.get("/studies/bench/front", params=params)
            barrier.wait()
            for _ in range(per_client):
                t = time.perf_counter()
                r = c.get("/studies/bench/front", params=params)
                local.append((time.perf_counter() - t) * 1e3)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
        with lock:
            samples.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return {**_percentiles(samples), "clients": clients, "rps": len(samples) / wall}


def _print(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"  {'scenario':58s} {'n':>5s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}  extra")
    for label, r in rows.items():
        extra = f"{r['rps']:.0f} req/s" if "rps" in r else f"{r.get('total', '')} match"
        print(
            f"  {label:58s} {r['n']:5d} {r['p50']:8.2f} {r['p95']:8.2f} {r['p99']:8.2f} "
            f"{r['max']:8.2f}  {extra}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=300, help="storage calls per query")
    parser.add_argument("--requests", type=int, default=300, help="sequential HTTP requests")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--per-client", type=int, default=100, help="requests per client")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    from query_storage import load  # the storage helper's bulk loader of the same study

    from paretoedge.storage import open_storage

    url, drop = _create_pg_database()
    proc = None
    try:
        storage = open_storage(url)
        t0 = time.perf_counter()
        info = load(storage, n=args.candidates, devices=DEVICES, seed=0)
        print(f"loaded {args.candidates} candidates x {len(DEVICES)} devices in "
              f"{time.perf_counter() - t0:.1f}s; front sizes {info['front_sizes']}")  # fmt: skip
        direct = measure_storage(storage, args.repeats)
        storage.close()
        _print("storage.get_front (in process), ms", direct)

        with tempfile.TemporaryDirectory() as home:
            base, proc = start_server(url, Path(home))
            sequential = {}
            concurrent = {}
            for label, params in QUERIES:
                sequential[label] = _http_run(base, params, clients=1, per_client=args.requests)
                concurrent[label] = _http_run(
                    base, params, clients=args.clients, per_client=args.per_client
                )
            proc.terminate()
            proc.wait(timeout=20)
            proc = None
        _print("HTTP GET /studies/bench/front, 1 client (sequential), ms", sequential)
        _print(f"HTTP GET /studies/bench/front, {args.clients} concurrent clients, ms", concurrent)
        worst = max(r["p99"] for r in sequential.values())
        print(f"\nworst p99 over the scenarios, 1 client: {worst:.2f} ms (target <= 50 ms): "
              f"{'met' if worst <= 50 else 'NOT met'}")  # fmt: skip
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "load": info,
                        "storage": direct,
                        "http_sequential": sequential,
                        "http_concurrent": concurrent,
                    },
                    indent=2,
                    default=str,
                )  # fmt: skip
            )
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
