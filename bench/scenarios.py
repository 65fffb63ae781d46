"""The measured flows: one-off payments, subscribe → receipt, billing runs, event → email, gateway GET.

Each returns plain figures (dicts of numbers); run.py puts them next to the ceiling and the targets.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billing_shared import bootstrap

from . import cpu
from .drain import consumed, outbox_drained, outbox_position
from .loadgen import HttpPool, LoadResult, closed_loop, expect, open_loop, percentile, started_at
from .system import BenchSystem

RECEIPT = "Receipt for invoice"
INVOICE_DUE = "Invoice "
WELCOME = "Welcome"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _latency_figures(values: list[float], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}p50_ms": _ms(percentile(values, 50)), f"{prefix}p99_ms": _ms(percentile(values, 99))}


def _failure_figures(*results: LoadResult) -> dict[str, Any]:
    """Every failure of a step's phases (warm-up, peak, measured), added up, and their share of its calls.
    The percentiles are of successful calls only: the targets judge a step with any failure as failed."""
    failures = sum((Counter(r.failures()) for r in results), Counter())
    count = sum(failures.values())
    calls = count + sum(r.ok for r in results)
    return {"failures": dict(failures), "failure_count": count,
            "error_rate": round(count / calls, 4) if calls else 0.0}


# --- one-off payments --------------------------------------------------------------------------


async def one_off_payments(system: BenchSystem, http: HttpPool, customers: list[dict], *, warmup_s: float,
                           duration_s: float, concurrency: int, progress) -> dict[str, Any]:
    headers = await system.admin_headers(http)

    async def pay(n: int) -> None:
        customer = customers[n % len(customers)]
        response = expect(await http.post(
            "/api/payments",
            json_body={"customer_id": customer["id"], "amount": 500 + n % 100, "currency": "USD",
                       "description": "bench one-off"},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        ), 201)
        status = response.json()["status"]
        if status != "succeeded":
            raise RuntimeError(f"payment {status}")

    progress(f"payments: warm-up {warmup_s:.0f}s")
    warm = await closed_loop(pay, concurrency=concurrency, duration=warmup_s)
    progress(f"payments: {concurrency} in flight for {duration_s:.0f}s")
    first_row = await outbox_position(system, "payment")
    result = await closed_loop(pay, concurrency=concurrency, duration=duration_s)
    loaded = time.perf_counter()
    # As the hop ceiling counts: accepted / (load + drain). A 201 leaves the payment's events in the outbox and
    # then in their consumers' queues; counting the load alone would leave that work out.
    await consumed(system, "payment", first_row, timeout_s=60)
    drain_s = time.perf_counter() - loaded
    return {"per_s": round(result.rate, 1), **_latency_figures(result.latencies), "count": result.ok,
            **_failure_figures(warm, result), "concurrency": concurrency, "ops_total": warm.ok + result.ok,
            # per_s above: 201s during the load alone, as before (comparable with earlier results)
            "sustained_per_s": round(result.ok / (result.elapsed + drain_s), 1),
            "load_s": round(result.elapsed, 2), "drain_s": round(drain_s, 2)}


# --- subscribe → invoice → charge → paid → receipt ---------------------------------------------------


async def create_plan(system: BenchSystem, http: HttpPool, amount: int = 1500) -> str:
    headers = await system.admin_headers(http)
    body = {"name": f"Bench plan {uuid.uuid4().hex[:6]}", "amount": amount, "currency": "USD", "interval": "month"}
    response = expect(await http.post("/api/plans", json_body=body,
                                      headers={**headers, "Idempotency-Key": uuid.uuid4().hex}), 201)
    return response.json()["id"]


async def subscribe_flows(system: BenchSystem, http: HttpPool, customers: list[dict], plan_id: str, *,
                          warmup_s: float, duration_s: float, timeout_s: float, progress) -> dict[str, Any]:
    """Each of len(customers) workers subscribes its own customer, waits for the receipt, and again."""
    headers = await system.admin_headers(http)
    receipts = {c["email"]: 0 for c in customers}

    async def flow(n: int) -> float:
        customer = customers[n % len(customers)]
        started = time.perf_counter()
        expect(await http.post(
            "/api/subscriptions", json_body={"customer_id": customer["id"], "plan_id": plan_id},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        ), 201)
        receipts[customer["email"]] += 1
        mail = await system.sink.wait(customer["email"], RECEIPT, receipts[customer["email"]], timeout=timeout_s)
        return mail.arrived_perf - started

    async def run(seconds: float, workers: list[int]) -> tuple[LoadResult, set[int]]:
        # Worker i always takes customer i: one flow per customer in flight, so its n-th receipt is its own.
        counters = {i: iter(range(i, 10**9, len(customers))) for i in workers}
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        result = LoadResult(time.time(), 0.0)
        failed: set[int] = set()

        async def worker(i: int) -> None:
            while time.perf_counter() < deadline:
                try:
                    result.values.append(await flow(next(counters[i])))
                    result.outcomes["ok"] += 1
                except Exception as exc:
                    result.outcomes[str(exc)[:100]] += 1
                    failed.add(i)
                    return  # this customer's receipt count is now uncertain: the worker stops

        await asyncio.gather(*(worker(i) for i in workers))
        result.elapsed = time.perf_counter() - started
        return result, failed

    progress(f"subscribe: warm-up {warmup_s:.0f}s")
    warm, failed = await run(warmup_s, list(range(len(customers))))
    # A customer whose flow failed may still get that flow's receipt later, which its next flow would take for
    # its own: such customers sit the measured run out.
    healthy = [i for i in range(len(customers)) if i not in failed]
    progress(f"subscribe: {len(healthy)} flows in flight for {duration_s:.0f}s (each ends at its receipt)")
    result, _ = await run(duration_s, healthy)
    return {"flows_per_s": round(result.rate, 1), **_latency_figures(result.values), "count": result.ok,
            **_failure_figures(warm, result), "in_flight": len(healthy), "ops_total": warm.ok + result.ok,
            "left_out_after_warmup": len(failed)}


# --- billing runs ---------------------------------------------------------------------------------


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (a service CLI run, once awaited)."""
    t = os.times()
    return t.children_user + t.children_system


async def _service_cli(system: BenchSystem, service: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, **system.stack.common_env(), "DATABASE_URL": system.service_url(service)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args, cwd=bootstrap.service_dir(service), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{service} cli {' '.join(args)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def _assign_customers(system: BenchSystem, plan_id: str, customer_ids: list[str]) -> None:
    """seed-due gives each subscription a random customer id; spread them over real customers (with a
    card, a notifier projection and an address) so the whole chain runs: charge, receipt, email."""
    conn = await asyncpg.connect(system.database_dsn())
    try:
        await conn.execute(
            """
            WITH c AS (SELECT cid, ord FROM unnest($1::uuid[]) WITH ORDINALITY AS t(cid, ord)),
                 s AS (SELECT id, (row_number() OVER (ORDER BY id) - 1) % $2 + 1 AS ord
                         FROM subscription.subscriptions WHERE plan_id = $3)
            UPDATE subscription.subscriptions AS t SET customer_id = c.cid
              FROM s JOIN c USING (ord) WHERE t.id = s.id
            """,
            [uuid.UUID(c) for c in customer_ids], len(customer_ids), uuid.UUID(plan_id),
        )
    finally:
        await conn.close()


async def _settle_storage(system: BenchSystem) -> None:
    """Start the timed renewal step from settled storage, as a live system's would be: vacuum what seeding
    and `_assign_customers` (a rewrite of every seeded row, each index entry doubled) left dead, which
    autovacuum would have done (it is off on this machine kind), and checkpoint, so that neither a
    checkpoint's writes nor the seeding's dirty pages land in the step."""
    conn = await asyncpg.connect(system.database_dsn())
    try:
        await conn.execute("VACUUM (ANALYZE) subscription.subscriptions")
        await conn.execute("VACUUM (ANALYZE) subscription.subscription_periods")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _renewed_so_far(system: BenchSystem, plan_id: str) -> int:
    conn = await asyncpg.connect(system.database_dsn())
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM subscription.subscriptions WHERE plan_id = $1 AND current_period_index >= 1",
            uuid.UUID(plan_id))
    finally:
        await conn.close()


DOWNSTREAM = ("invoice", "payment", "dunning", "notifier")


async def billing_run(system: BenchSystem, customers: list[dict], count: int, *, timeout_s: float,
                      progress, progress_every_s: float = 5.0) -> dict[str, Any]:
    recipients = {c["email"].lower() for c in customers}
    as_of = datetime.now(UTC).replace(microsecond=0)
    progress(f"billing {count:,}: seeding due subscriptions")
    seeded = await _service_cli(system, "subscription", "seed-due", "--count", str(count), "--as-of",
                                as_of.isoformat())
    await _assign_customers(system, seeded["plan_id"], [c["id"] for c in customers])
    await _settle_storage(system)
    progress(f"billing {count:,}: renewal step (subscription billing-run --as-of {as_of.isoformat()})")
    seen = {"cursor": len(system.sink.mails), RECEIPT: 0, INVOICE_DUE: 0}

    def counts() -> tuple[int, int]:
        # Only the mails that came since the last look: the sink holds hundreds of thousands in a full run.
        mails = system.sink.mails
        end = len(mails)
        for mail in mails[seen["cursor"]:end]:
            if mail.to in recipients:
                for prefix in (RECEIPT, INVOICE_DUE):
                    if mail.subject.startswith(prefix):
                        seen[prefix] += 1
        seen["cursor"] = end
        return seen[RECEIPT], seen[INVOICE_DUE]

    started_wall, started = time.time(), time.perf_counter()
    seen["cursor"] = len(system.sink.mails)
    # The renewal step is measured on its own: the services downstream (and whatever an earlier run left
    # them) are paused meanwhile and resumed after, so it neither competes with them nor with a backlog.
    downstream = [system.stack.processes[name] for name in DOWNSTREAM if name in system.stack.processes]
    groups = {name: p.popen.pid for name, p in system.stack.processes.items() if p.popen is not None}
    cpu_before, cli_before = cpu.snapshot(groups), _children_cpu()
    for process in downstream:
        process.signal(signal.SIGSTOP)
    try:
        launched = time.perf_counter()
        task = asyncio.create_task(
            _service_cli(system, "subscription", "billing-run", "--as-of", as_of.isoformat(), "--quiet"))
        while not task.done():
            await asyncio.wait({task}, timeout=progress_every_s)
            if not task.done():
                done = await _renewed_so_far(system, seeded["plan_id"])
                progress(f"billing {count:,}: renewal step {done:,}/{count:,} "
                         f"after {time.perf_counter() - started:.0f}s")
        run = task.result()
        cli_returned = time.perf_counter()
        # Until the step's events are in the broker (the relay publishes them as the CLI commits): the same work
        # per renewal at every size. At 10,000 most of it follows the CLI's end, at 100,000 most overlaps it,
        # so the CLI's time alone is not comparable across sizes.
        await outbox_drained(system, "subscription", timeout_s=timeout_s)
        drained = time.perf_counter()
        drained_after_cli_s = drained - cli_returned
    finally:
        for process in downstream:
            process.signal(signal.SIGCONT)
    # The step's own CPU by process: the billing-run CLI (a child of this process) and what it made busy.
    step_cpu = cpu.difference(cpu_before, cpu.snapshot(groups))
    step_cpu["billing-run cli"] = round(_children_cpu() - cli_before, 2)
    step_cpu["total"] = round(step_cpu["total"] + step_cpu["billing-run cli"], 2)
    # From the CLI's launch (its interpreter's start-up included) until the relay published the last event:
    # an upper bound on the step's time, which the headline rate uses. The CLI's own timer starts after its
    # start-up and stops before most of the publishing at 10,000: kept, labelled as the CLI's.
    wall_until_published_s = drained - launched
    renewed = int(run["renewed"])
    renewal_s = float(run.get("seconds") or wall_until_published_s)
    progress(f"billing {count:,}: renewed {renewed:,} in {wall_until_published_s:.1f}s until published "
             f"({renewed / wall_until_published_s:,.0f}/s; the CLI's own timer {renewal_s:.1f}s); "
             f"waiting until every invoice is paid and emailed")

    deadline = started + timeout_s
    next_report = time.perf_counter() + progress_every_s
    receipts, invoiced = counts()
    while (receipts < renewed or invoiced < renewed) and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
        receipts, invoiced = counts()
        if time.perf_counter() >= next_report:
            next_report += progress_every_s
            elapsed = time.perf_counter() - started
            progress(f"billing {count:,}: {receipts:,}/{renewed:,} receipts, {invoiced:,}/{renewed:,} invoice emails "
                     f"after {elapsed:.0f}s ({(receipts + invoiced) / elapsed:,.1f} emails/s)")
    complete = receipts >= renewed and invoiced >= renewed
    last = max((m.arrived for m in list(system.sink.mails)
                if m.arrived >= started_wall and m.to in recipients), default=time.time())
    elapsed = (last - started_wall) if complete else time.perf_counter() - started
    figures: dict[str, Any] = {
        "subscriptions": count,
        "renewed": renewed,
        "renewal_s": round(renewal_s, 2),
        "renewals_per_s": round(renewed / renewal_s, 1) if renewal_s else 0.0,
        "renewal_published_s": round(renewal_s + drained_after_cli_s, 2),
        "renewal_wall_until_published_s": round(wall_until_published_s, 2),
        "renewals_per_s_until_published": round(renewed / wall_until_published_s, 1),
        # What the CLI reports beside `renewed`: a subscription it could not renew counts here.
        **{key: int(run.get(key) or 0) for key in ("failed", "skipped", "ended")},
        # Paused (SIGSTOP) during the step, resumed after: the step's figures are of it alone.
        "paused_during_renewal": [name for name in DOWNSTREAM if name in system.stack.processes],
        "renewal_cpu_seconds": step_cpu,
        "receipts": receipts,
        "invoice_emails": invoiced,
        "complete": complete,
        "paid_and_emailed_s": round(elapsed, 1),
        "paid_and_emailed_per_s": round(receipts / elapsed, 1) if elapsed else 0.0,
        "customers": len(customers),
    }
    if not complete:
        # Two emails per invoice (invoice, then receipt) and receipts tend to queue behind the invoice emails:
        # extrapolate from all the emails so far.
        rate = (receipts + invoiced) / elapsed if elapsed else 0.0
        figures["paid_and_emailed_s_estimated"] = round(2 * renewed / rate, 1) if rate else None
        progress(f"billing {count:,}: NOT complete after {timeout_s:.0f}s: {receipts:,} receipts")
    return figures


# --- peaks, then latency at half the peak rate ------------------------------------------------------


async def _peak(op, name: str, *, concurrency: int, warmup_s: float, peak_s: float,
                progress) -> tuple[LoadResult, dict[str, Any], list[LoadResult]]:
    """The closed loop's best rate at `concurrency` and at twice it, after a warm-up: as with the hop, one
    level alone may sit below the knee (each worker waits on its own call), and half of an understated peak
    is a gentler rate than the targets mean. Returns the best level, its figures, and every phase's result."""
    progress(f"{name}: warm-up {warmup_s:g}s")
    phases = [await closed_loop(op, concurrency=concurrency, duration=warmup_s)]
    by_level: dict[int, float] = {}
    best: LoadResult | None = None
    for level in (concurrency, 2 * concurrency):
        progress(f"{name}: peak, {level} in flight for {peak_s:.0f}s")
        result = await closed_loop(op, concurrency=level, duration=peak_s)
        phases.append(result)
        by_level[level] = round(result.rate, 1)
        if best is None or result.rate > best.rate:
            best = result
    assert best is not None
    low, high = by_level[concurrency], by_level[2 * concurrency]
    # Still climbing by more than noise at twice the load: the peak may lie higher yet, and half of it too.
    plateaued = high <= low * 1.1
    if not plateaued:
        progress(f"{name}: WARNING the rate still climbs at {2 * concurrency} in flight ({low:,.0f} → {high:,.0f}/s)")
    return best, {"peak_per_s_by_concurrency": by_level, "peak_plateaued": plateaued}, phases


# --- event → email at half the peak rate --------------------------------------------------------


async def event_to_email(system: BenchSystem, http: HttpPool, *, warmup_s: float, peak_s: float,
                         duration_s: float, concurrency: int, timeout_s: float, progress) -> dict[str, Any]:
    """customer.created → welcome email: the peak rate closed-loop, then latency in an open loop at half of it."""
    headers = await system.admin_headers(http)

    async def signup(n: int) -> float:
        # From the request's scheduled start (open loop) or its call (closed loop): before the request is sent,
        # so before the event's commit; the welcome mail cannot arrive before its own customer is created, and
        # both instants are of the one monotonic clock, so the difference is never negative.
        sent = started_at()
        email = f"welcome-{uuid.uuid4().hex[:12]}@bench.example"
        expect(await http.post("/api/customers", json_body={"email": email, "name": f"Bench {n}"},
                               headers=headers), 201)
        mail = await system.sink.wait(email, WELCOME, timeout=timeout_s)
        return mail.arrived_perf - sent

    peak, levels, phases = await _peak(signup, "event → email", concurrency=concurrency, warmup_s=warmup_s,
                                       peak_s=peak_s, progress=progress)
    rate = max(peak.rate / 2, 1.0)
    progress(f"event → email: peak {peak.rate:.0f}/s; open loop at {rate:.0f}/s for {duration_s:.0f}s")
    half = await open_loop(signup, rate=rate, duration=duration_s)
    return {"peak_per_s": round(peak.rate, 1), "rate_per_s": round(rate, 1), **levels,
            **_latency_figures(half.values), **_latency_figures(half.latencies, "flow_"),
            "count": half.ok, **_failure_figures(*phases, half), "ops_total": sum(r.ok for r in [*phases, half])}


# --- gateway GET at half the peak rate ----------------------------------------------------------


async def gateway_get(system: BenchSystem, http: HttpPool, customer_ids: list[str], *, warmup_s: float,
                      peak_s: float, duration_s: float, concurrency: int, progress) -> dict[str, Any]:
    headers = await system.admin_headers(http)

    async def read(n: int) -> None:
        expect(await http.get(f"/api/customers/{customer_ids[n % len(customer_ids)]}", headers=headers), 200)

    peak, levels, phases = await _peak(read, "gateway GET", concurrency=concurrency, warmup_s=warmup_s,
                                       peak_s=peak_s, progress=progress)
    rate = max(peak.rate / 2, 1.0)
    progress(f"gateway GET: peak {peak.rate:.0f}/s; open loop at {rate:.0f}/s for {duration_s:.0f}s")
    half = await open_loop(read, rate=rate, duration=duration_s)
    return {"peak_per_s": round(peak.rate, 1), "rate_per_s": round(rate, 1), **levels,
            **_latency_figures(half.latencies), "count": half.ok, **_failure_figures(*phases, half),
            "ops_total": sum(r.ok for r in [*phases, half])}
