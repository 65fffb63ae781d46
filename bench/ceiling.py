"""The machine's ceiling: pgbench TPC-B on the same Postgres, and the minimal durable hop at full load."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

from billing_shared import bootstrap
from billing_shared.auth import generate_keypair

from . import cpu
from .loadgen import HttpPool, closed_loop, expect

REPO_ROOT = Path(__file__).resolve().parents[1]
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


def _pg_args(admin_dsn: str) -> list[str]:
    # postgresql://user@host:port/db → pgbench's -h/-p/-U
    rest = admin_dsn.split("://", 1)[1]
    user, _, hostpart = rest.rpartition("@")
    hostport = hostpart.split("/", 1)[0]
    host, _, port = hostport.partition(":")
    user = user.split(":", 1)[0] or "postgres"
    return ["-h", host or "127.0.0.1", "-p", port or "5432", "-U", user]


def run_pgbench(admin_dsn: str, *, scale: int, clients: int, threads: int, seconds: int, progress=print) -> dict:
    """TPC-B tps of a scratch database (created, initialised, dropped)."""
    database = f"bench_pgbench_{os.getpid()}"
    conn_args = _pg_args(admin_dsn)
    asyncio.run(bootstrap.drop_database(admin_dsn, database))
    asyncio.run(bootstrap.ensure_database(admin_dsn, database))
    try:
        progress(f"pgbench: initialising scale {scale}")
        subprocess.run([PGBENCH, *conn_args, "-i", "-q", "-s", str(scale), database], check=True,
                       capture_output=True, text=True)
        progress(f"pgbench: TPC-B, {clients} clients, {threads} threads, {seconds}s")
        out = subprocess.run([PGBENCH, *conn_args, "-c", str(clients), "-j", str(threads), "-T", str(seconds),
                              database], check=True, capture_output=True, text=True).stdout
    finally:
        asyncio.run(bootstrap.drop_database(admin_dsn, database))
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return {"tps": tps, "latency_avg_ms": float(latency.group(1)) if latency else None,
            "clients": clients, "threads": threads, "seconds": seconds, "scale": scale}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HopConfig:
    admin_dsn: str
    amqp_url: str
    concurrency: int = 64
    warmup_s: float = 2.0
    duration_s: float = 10.0
    # One worker process per core, each with its API, relay and consumer, as a scaled-out service runs: the
    # machine's ceiling, not one process's.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Load levels tried; the best completion rate is the ceiling. Past the knee, HTTP requests crowd the
    # consumers out of the connection pool and completions fall, so one level alone can understate it.
    concurrencies: tuple[int, ...] = ()


async def _count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM benchhop.hop_done")


async def _drive_hop(base_url: str, dsn: str, cfg: HopConfig, progress) -> dict:
    """Closed-loop HTTP load, then wait until every accepted hop has completed. The ceiling is the sustained
    rate, hops completed from the end of the warm-up until the backlog is drained, over that time: under full
    HTTP load the consumers fall behind (completions during the window alone understate the machine), and
    accepted requests alone overstate it (work left queued). Counting from the warm-up's end leaves out the
    warm-up's cold start, and counts what it left queued as the work it is, done after the warm-up."""
    pool = HttpPool(base_url, size=cfg.concurrency)
    conn = await asyncpg.connect(dsn)
    try:
        async def hop(n: int) -> None:
            expect(await pool.post(f"/hop?n={n}"), 202)

        c_start = await _count(conn)
        load = asyncio.create_task(closed_loop(hop, concurrency=cfg.concurrency,
                                               duration=cfg.warmup_s + cfg.duration_s))
        await asyncio.sleep(cfg.warmup_s)
        c0, t0 = await _count(conn), time.perf_counter()
        samples = []
        while not load.done():
            await asyncio.sleep(1.0)
            samples.append((time.perf_counter() - t0, await _count(conn)))
            if len(samples) % 5 == 0:
                progress(f"hop: {samples[-1][1] - c0} completions in {samples[-1][0]:.0f}s")
        http = await load
        t1 = time.perf_counter()
        c1 = await _count(conn)
        drained_at = None
        for _ in range(3000):
            if (c_drained := await _count(conn)) - c_start >= http.ok:
                drained_at = time.perf_counter()
                break
            await asyncio.sleep(0.02)
        if drained_at is None:
            raise RuntimeError(f"hop backlog not drained within 60 s of the load ({http.ok} accepted)")
        return {
            "completions_per_s": (c_drained - c0) / (drained_at - t0),
            "completions_after_warmup": c_drained - c0,
            "window_completions_per_s": (c1 - c0) / (t1 - t0),
            "http_accepted_per_s": http.rate,
            "http_p50_ms": http.p(50) * 1000,
            "http_p99_ms": http.p(99) * 1000,
            "accepted": http.ok,
            "failures": http.failures(),
            "drain_s": drained_at - t1,
            "concurrency": cfg.concurrency,
            "window_s": t1 - t0,
        }
    finally:
        await conn.close()
        await pool.close()


def run_hop(cfg: HopConfig, progress=print) -> dict:
    """Start the hop app as a real uvicorn process on a scratch database and load it."""
    database = f"bench_hop_{os.getpid()}"
    db_dsn = bootstrap.with_database(cfg.admin_dsn, database)
    sa_url = db_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(bootstrap.drop_database(cfg.admin_dsn, database))
    asyncio.run(bootstrap.ensure_database(cfg.admin_dsn, database))
    port = free_port()
    _, public_key = generate_keypair()
    env = {**os.environ, "DATABASE_URL": sa_url, "AMQP_URL": cfg.amqp_url, "JWT_PUBLIC_KEY": public_key,
           "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    proc = None
    try:
        subprocess.run([sys.executable, "-m", "bench.hop_app", "setup", sa_url], cwd=REPO_ROOT, env=env, check=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bench.hop_app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log", "--log-level", "warning", "--workers", str(cfg.workers)],
            cwd=REPO_ROOT, env=env, start_new_session=True,
        )
        _wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        for _ in range(cfg.workers - 1):  # every worker up (each answers /ready on its own)
            _wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        best: dict | None = None
        tried: dict[int, float] = {}
        failures: Counter = Counter()  # every level's: a failure at a level not reported is still one seen
        for concurrency in cfg.concurrencies or (cfg.concurrency,):
            progress(f"hop: {cfg.workers} workers, {concurrency} clients in flight for "
                     f"{cfg.warmup_s:.0f}s + {cfg.duration_s:.0f}s")
            before = cpu.snapshot({"hop": proc.pid})
            figures = asyncio.run(
                _drive_hop(f"http://127.0.0.1:{port}", db_dsn, replace(cfg, concurrency=concurrency), progress))
            figures["cpu_seconds"] = cpu.difference(before, cpu.snapshot({"hop": proc.pid}))
            figures["ops_total"] = figures["accepted"]
            tried[concurrency] = round(figures["completions_per_s"], 1)
            failures += Counter(figures["failures"])
            if best is None or figures["completions_per_s"] > best["completions_per_s"]:
                best = figures
        assert best is not None
        best["workers"] = cfg.workers
        best["completions_per_s_by_concurrency"] = tried
        best["failures_all_levels"] = dict(failures)
        # The reported level's own share, as the system steps give theirs
        best["failure_count"] = sum(best["failures"].values())
        best["error_rate"] = round(best["failure_count"] / (best["accepted"] + best["failure_count"]), 4) \
            if best["accepted"] + best["failure_count"] else 0.0
        return best
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        asyncio.run(bootstrap.drop_database(cfg.admin_dsn, database))


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hop app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError("hop app not ready in time")
