"""The benchmark: the machine's ceiling and the billing engine's flows, in one run on this machine.

    python -m bench.run --profile full      what `make bench` runs (long: the 100,000-subscription billing run)
    python -m bench.run --profile smoke     a quick pass over every figure (`make bench-smoke`, and in `make test`)

Steps, in order:
  1. ceiling: pgbench TPC-B on a scratch database of the same Postgres; then the minimal durable "hop"
     (bench/hop_app.py: HTTP → one transaction with an outbox row → confirmed publish by the shared relay →
     the shared EventConsumer writing one row) as a uvicorn process under full load: completions/s.
  2. the whole system started like `make run` (own database, vhost and ports; the benchmark's SMTP sink; the
     payment service with one uvicorn worker per core, like the hop), driven through the gateway with a lean
     keep-alive HTTP client:
     - gateway GET /api/customers/{id}: after a short warm-up the peak (closed loop, the better of two load
       levels), then p50/p99 in an open loop at half of it;
     - event → email: customer.created → welcome email, peak as above then p50/p99 at half the peak rate
       (from the request's scheduled start, before it was even sent, so an upper bound from the event's
       commit, to the mail's arrival at the sink);
     - one-off payments: POST /api/payments with an Idempotency-Key (mock gateway, events out): /s as the hop
       counts it, accepted / (load + until the outbox is published and its events' consumers are idle), and
       the requests' p50/p99;
     - subscribe flows: POST /api/subscriptions → … → the receipt email arrives; each worker owns one customer
       and starts its next flow when its receipt has landed: flows/s and p50/p99 completion time;
     - billing runs: seed N due subscriptions (subscription `app.cli seed-due`, spread over real customers with
       cards; then VACUUM and a CHECKPOINT, so the step starts from settled storage), the renewal step
       (`app.cli billing-run`, with the services downstream paused by SIGSTOP meanwhile): renewals/s from the
       CLI's launch until the relay has published its events, which the 60 s target judges; the 10× target
       judges the CLI's own time plus the publishing after it (the same work per renewal at every size, without
       the CLI's start-up); the CLI's own timer is kept beside them. Then the time until every resulting
       invoice is paid and both its emails (invoice, receipt) have arrived.
  3. each figure with its ratio to the hop ceiling, its error rate and the targets' pass/fail marks (a figure
     whose step had any failed, timed-out or dropped request fails its target); JSON in
     bench/results/bench-<timestamp>.json and a PNG chart beside it. The exit status is 1 if a step failed or
     any request in it did.

Keep the machine otherwise idle: the figures are only as good as the quiet they were taken in. Ctrl-C, `kill`
or a timeout (SIGTERM) stops a run cleanly: its processes, database and vhost are removed, no results written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from billing_shared.testing import ADMIN_DSN, create_vhost

from . import ceiling, cpu, profiling, report, scenarios
from .loadgen import HttpPool
from .system import BenchSystem

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CORES = os.cpu_count() or 1
# The one-off payment flow is nearly all the payment service's work: it runs one worker per core, as the hop
# does (an ops team scales the service that binds). More workers elsewhere cost more than they give: each has
# its own consumer, relay and pool, and the subscribe flows measured 15 % slower with every service at 2.
SERVICE_WORKERS = {"payment": CORES}
ALL_STEPS = ("pgbench", "hop", "get", "email", "payments", "subscribe", "billing")


@dataclass
class Profile:
    pgbench_scale: int
    pgbench_seconds: int
    pgbench_clients: int
    hop_warmup_s: float
    hop_s: float
    get_peak_s: float
    get_s: float
    email_peak_s: float
    email_s: float
    payments_warmup_s: float
    payments_s: float
    subscribe_warmup_s: float
    subscribe_s: float
    subscribe_in_flight: int
    billing_sizes: list[int]
    billing_customers: int
    billing_timeout_s: float
    concurrency: int = 64
    email_concurrency: int = 32
    peak_warmup_s: float = 2.0  # before the GET and email peaks: the first calls pay for cold caches and pools
    progress_every_s: float = 5.0
    stack_env: dict[str, str] = field(default_factory=dict)
    service_workers: dict[str, int] = field(default_factory=lambda: dict(SERVICE_WORKERS))


PROFILES = {
    "full": Profile(
        pgbench_scale=5, pgbench_seconds=15, pgbench_clients=4,
        hop_warmup_s=3, hop_s=15,
        get_peak_s=8, get_s=15,
        email_peak_s=10, email_s=15,
        payments_warmup_s=3, payments_s=15,
        subscribe_warmup_s=3, subscribe_s=20, subscribe_in_flight=64,
        billing_sizes=[10_000, 100_000], billing_customers=200, billing_timeout_s=5400,
    ),
    "smoke": Profile(
        pgbench_scale=1, pgbench_seconds=3, pgbench_clients=4,
        hop_warmup_s=1, hop_s=3,
        get_peak_s=2, get_s=2,
        email_peak_s=2, email_s=2,
        payments_warmup_s=1, payments_s=3,
        subscribe_warmup_s=1, subscribe_s=3, subscribe_in_flight=16,
        billing_sizes=[10, 100], billing_customers=10, billing_timeout_s=120,
        concurrency=32, email_concurrency=16, peak_warmup_s=0.5, progress_every_s=3,
    ),
}


def _progress(started: float):
    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)
    return progress


def _cpu_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU in use right now (0..1), before we add any load."""
    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle
    total0, idle0 = snapshot()
    time.sleep(seconds)
    total1, idle1 = snapshot()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


async def _system_steps(system: BenchSystem, profile: Profile, steps: set[str], results: dict[str, Any],
                        progress) -> None:
    system.sink.attach(asyncio.get_running_loop())
    # The peaks try twice their concurrency as well: a connection for each of those in flight.
    size = max(2 * profile.concurrency, 2 * profile.email_concurrency, profile.subscribe_in_flight) + 16
    http = HttpPool(system.base_url, size=size, timeout=60)

    groups = {name: p.popen.pid for name, p in system.stack.processes.items() if p.popen is not None}

    async def step(name: str, key: str, coro_factory) -> None:
        if name not in steps:
            return
        before = cpu.snapshot(groups)
        try:
            results[key] = await coro_factory()
        except Exception as exc:
            traceback.print_exc()
            results.setdefault("errors", []).append(f"{key}: {exc!r}"[:300])
        results.setdefault("cpu_seconds", {})[key] = cpu.difference(before, cpu.snapshot(groups))

    try:
        progress("set-up: customers with cards")
        payers = await system.new_customers(http, "payer", max(8, profile.concurrency // 4))
        await step("get", "gateway_get", lambda: scenarios.gateway_get(
            system, http, [c["id"] for c in payers], warmup_s=profile.peak_warmup_s, peak_s=profile.get_peak_s,
            duration_s=profile.get_s, concurrency=profile.concurrency, progress=progress))
        await step("email", "event_email", lambda: scenarios.event_to_email(
            system, http, warmup_s=profile.peak_warmup_s, peak_s=profile.email_peak_s, duration_s=profile.email_s,
            concurrency=profile.email_concurrency, timeout_s=60, progress=progress))
        await step("payments", "payments", lambda: scenarios.one_off_payments(
            system, http, payers, warmup_s=profile.payments_warmup_s, duration_s=profile.payments_s,
            concurrency=profile.concurrency, progress=progress))

        async def subscribe() -> dict[str, Any]:
            subscribers = await system.new_customers(http, "subscriber", profile.subscribe_in_flight)
            plan_id = await scenarios.create_plan(system, http)
            return await scenarios.subscribe_flows(
                system, http, subscribers, plan_id, warmup_s=profile.subscribe_warmup_s,
                duration_s=profile.subscribe_s, timeout_s=120, progress=progress)

        await step("subscribe", "subscribe", subscribe)

        async def billing() -> list[dict[str, Any]]:
            runs = []
            billed = await system.new_customers(http, "billed", profile.billing_customers)
            for size in profile.billing_sizes:
                before = cpu.snapshot(groups)
                run = await scenarios.billing_run(
                    system, billed, size, timeout_s=profile.billing_timeout_s, progress=progress,
                    progress_every_s=profile.progress_every_s)
                run["cpu_seconds"] = cpu.difference(before, cpu.snapshot(groups))  # each size's own, to compare
                # A run still draining when the next starts makes the next one's figures pessimistic.
                run["backlog_at_start"] = sum(r["renewed"] - min(r["receipts"], r["renewed"]) for r in runs)
                runs.append(run)
            return runs

        await step("billing", "billing_runs", billing)
    finally:
        if system.setup_retries:
            results["setup_retries_after_5xx"] = system.setup_retries
        await http.close()


def run(profile_name: str, profile: Profile, steps: set[str], out_dir: Path, keep_logs: bool,
        sample: list[str] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    progress = _progress(started)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    busy = _cpu_busy()
    results: dict[str, Any] = {
        "profile": profile_name,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "cpu_busy_before": round(busy, 3)},
        "settings": asdict(profile),
        "service_workers": profile.service_workers,
        "ceiling": {},
    }
    if busy > 0.15:
        progress(f"WARNING: the machine is already {busy:.0%} busy; the figures will be low and noisy")

    if "pgbench" in steps:
        try:
            results["ceiling"]["pgbench"] = ceiling.run_pgbench(
                ADMIN_DSN, scale=profile.pgbench_scale, clients=profile.pgbench_clients, threads=2,
                seconds=profile.pgbench_seconds, progress=progress)
            progress(f"pgbench: {results['ceiling']['pgbench']['tps']:,.0f} tps")
        except Exception as exc:
            traceback.print_exc()
            results.setdefault("errors", []).append(f"pgbench: {exc!r}"[:300])
    if "hop" in steps:
        vhost = f"bench_hop_{os.getpid()}"
        try:
            results["ceiling"]["hop"] = ceiling.run_hop(
                ceiling.HopConfig(ADMIN_DSN, create_vhost(vhost), concurrency=profile.concurrency,
                                  concurrencies=tuple(sorted({profile.concurrency // 2, profile.concurrency})),
                                  warmup_s=profile.hop_warmup_s, duration_s=profile.hop_s), progress=progress)
            progress(f"hop: {results['ceiling']['hop']['completions_per_s']:,.0f} completions/s")
        except Exception as exc:
            traceback.print_exc()
            results.setdefault("errors", []).append(f"hop: {exc!r}"[:300])
        finally:
            import subprocess
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True)

    system_steps = steps - {"pgbench", "hop"}
    if system_steps:
        system = BenchSystem(extra_env=profile.stack_env, workers=profile.service_workers)
        failed = False
        samplers: list[profiling.Sampler] = []
        try:
            system.start(progress)
            progress("stack: up")
            for name in sample or []:
                out_dir.mkdir(parents=True, exist_ok=True)
                pid = system.stack.processes[name].popen.pid  # type: ignore[union-attr]
                samplers.append(profiling.Sampler(name, pid, out_dir / f"bench-{stamp}-pyspy-{name}.txt"))
            asyncio.run(_system_steps(system, profile, system_steps, results, progress))
        except Exception as exc:
            failed = True
            traceback.print_exc()
            results.setdefault("errors", []).append(f"stack: {exc!r}"[:300])
        finally:
            for sampler in samplers:
                sampler.stop()
            failed = failed or bool(results.get("errors")) or bool(report.failures_seen(results))
            logs = out_dir / f"bench-{stamp}-logs" if (keep_logs or failed) else None
            system.stop(keep_logs=logs)
            if logs:
                progress(f"service logs kept in {logs}")

    results["targets"] = report.evaluate_targets(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    json_path = out_dir / f"bench-{stamp}.json"
    png_path = out_dir / f"bench-{stamp}.png"
    report.write_json(results, json_path)
    try:
        report.draw_chart(results, png_path)
    except Exception as exc:  # the figures matter more than the picture
        print(f"chart not drawn: {exc!r}", file=sys.stderr)
    print("\n".join(report.summary_lines(results)))
    for name in sample or []:
        print("\n".join(profiling.summarise(out_dir / f"bench-{stamp}-pyspy-{name}.txt")))
    print(f"\nwritten: {json_path}\n         {png_path}\n(total {results['elapsed_s']:.0f}s)", flush=True)
    results["json_path"] = str(json_path)
    results["png_path"] = str(png_path)
    return results


def _end_like_ctrl_c_on_sigterm() -> None:
    """`kill`, `timeout` or a cancelled CI job (SIGTERM) ends a run the way Ctrl-C does: through the clean-up
    that stops the stack's processes and drops its database and vhost. By default SIGTERM would end this
    process alone and leave all of those behind."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="full (default) or smoke")
    parser.add_argument("--only", default="", help=f"comma-separated steps to run, of: {','.join(ALL_STEPS)}")
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out")
    parser.add_argument("--billing-sizes", default="",
                        help="override the billing run sizes, e.g. 10000,100000 (smoke: 10,100)")
    parser.add_argument("--billing-timeout", type=float, default=None,
                        help="give up waiting for a billing run's invoices to be paid and emailed after this many "
                             "seconds (full: 5400, smoke: 120); the figure is then marked incomplete, with an estimate")
    parser.add_argument("--duration", type=float, default=None,
                        help="override every measured window's length in seconds (warm-ups unchanged)")
    parser.add_argument("--workers", default="", metavar="SERVICE=N,...",
                        help="uvicorn workers per service, e.g. payment=2 (default: the profile's)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"where results go (default {RESULTS_DIR})")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs next to the results")
    parser.add_argument("--py-spy", default="", metavar="PROCESSES",
                        help="sample these stack processes with py-spy during the system steps, e.g. notifier,invoice "
                             "(raw stacks saved with the results, hottest frames printed)")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    if args.billing_sizes:
        profile = replace(profile, billing_sizes=[int(x) for x in args.billing_sizes.split(",") if x])
    if args.billing_timeout:
        profile = replace(profile, billing_timeout_s=args.billing_timeout)
    if args.duration:
        d = args.duration
        profile = replace(profile, hop_s=d, get_s=d, email_s=d, payments_s=d, subscribe_s=d, pgbench_seconds=int(d))
    if args.workers:
        pairs = (item.split("=", 1) for item in args.workers.split(",") if item)
        profile = replace(profile, service_workers={name.strip(): int(n) for name, n in pairs})
    steps = set(ALL_STEPS)
    if args.only:
        steps = {s.strip() for s in args.only.split(",") if s.strip()}
    steps -= {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = steps - set(ALL_STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    sample = [s.strip() for s in args.py_spy.split(",") if s.strip()]
    _end_like_ctrl_c_on_sigterm()
    try:
        results = run(args.profile, profile, steps, args.out, args.keep_logs, sample)
    except KeyboardInterrupt as stop:
        print(f"\ninterrupted ({stop or 'Ctrl-C'}): no results written; the stack's processes, database and "
              "vhost are removed", file=sys.stderr)
        return 130
    # A request that failed makes the figures doubtful as a crashed step does (the targets mark it, too).
    return 1 if results.get("errors") or report.failures_seen(results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
