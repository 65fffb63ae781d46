"""`make bench`'s smoke profile: every figure is produced and positive (a harness check, not a timing one)."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.system import BenchSystem

ROOT = Path(__file__).resolve().parents[1]

FIGURES = [
    "ceiling.pgbench.tps",
    "ceiling.hop.completions_per_s",
    "gateway_get.peak_per_s", "gateway_get.p50_ms", "gateway_get.p99_ms",
    "event_email.peak_per_s", "event_email.p50_ms", "event_email.p99_ms",
    "payments.per_s", "payments.sustained_per_s", "payments.p50_ms", "payments.p99_ms",
    "subscribe.flows_per_s", "subscribe.p50_ms", "subscribe.p99_ms",
]


def _figure(results: dict, path: str) -> float | None:
    value = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value  # type: ignore[return-value]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--profile", "smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    written = sorted(out.glob("bench-*.json"))
    assert written, f"no results written; exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc, json.loads(written[-1].read_text()), out


def test_smoke_profile_runs_every_step_without_errors(smoke) -> None:
    proc, results, _ = smoke
    assert proc.returncode == 0, f"{results.get('errors')}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert not results.get("errors")


@pytest.mark.parametrize("path", FIGURES)
def test_smoke_profile_produces_each_figure(smoke, path: str) -> None:
    value = _figure(smoke[1], path)
    assert isinstance(value, (int, float)) and not math.isnan(value) and value > 0, \
        f"{path} = {value!r}; errors: {smoke[1].get('errors')}"


@pytest.mark.parametrize("path", ["ceiling.hop", "gateway_get", "event_email", "payments", "subscribe"])
def test_no_step_saw_a_failed_request(smoke, path: str) -> None:
    """The figures count successful calls alone: a step could fail nine calls in ten and still show them."""
    step = _figure(smoke[1], path)
    assert isinstance(step, dict), f"{path} missing; errors: {smoke[1].get('errors')}"
    assert step["failures"] == {} and step.get("failures_all_levels", {}) == {}, step["failures"]
    assert step["failure_count"] == 0 and step["error_rate"] == 0, step


def test_billing_runs_renew_every_seeded_subscription_and_email_every_invoice(smoke) -> None:
    runs = smoke[1].get("billing_runs")
    assert runs, f"no billing runs; errors: {smoke[1].get('errors')}"
    assert [r["subscriptions"] for r in runs] == smoke[1]["settings"]["billing_sizes"]
    for run in runs:
        assert run["renewed"] == run["subscriptions"] and run["failed"] == run["skipped"] == 0, run
        assert run["renewal_wall_until_published_s"] >= run["renewal_published_s"], run
        assert run["complete"] and run["receipts"] >= run["renewed"] and run["invoice_emails"] >= run["renewed"], run
        assert run["renewals_per_s"] > 0 and run["paid_and_emailed_s"] > 0, run
        assert run["renewal_published_s"] >= run["renewal_s"] > 0, run


def test_each_billing_run_reports_its_own_cpu_per_renewal(smoke) -> None:
    proc, results, _ = smoke
    for run in results["billing_runs"]:
        assert run["cpu_seconds"]["total"] > 0 and run["cpu_seconds"]["invoice"] > 0, run["cpu_seconds"]
        assert re.search(rf"billing {run['subscriptions']:,} .* (ms|µs) CPU per op \({run['renewed']:,} ops\)",
                         proc.stdout)
        # The renewal step alone: the CLI that ran it, and its own line in the CPU table.
        assert run["renewal_cpu_seconds"]["billing-run cli"] > 0, run["renewal_cpu_seconds"]
        assert re.search(rf"renewal {run['subscriptions']:,} .* CPU per op \({run['renewed']:,} ops\)", proc.stdout)


def test_every_target_gets_a_value_and_the_summary_shows_ratios(smoke) -> None:
    proc, results, out = smoke
    assert all(t["value"] is not None for t in results["targets"]), results["targets"]
    assert "% of hop" in proc.stdout and "targets" in proc.stdout
    assert list(out.glob("bench-*.png")), "no chart drawn"


def _billing_run(subscriptions: int, renewal_s: float, backlog: int = 0, published_s: float | None = None,
                 **more: object) -> dict:
    return {"subscriptions": subscriptions, "renewed": subscriptions, "renewal_s": renewal_s, "complete": False,
            "receipts": 0, "backlog_at_start": backlog, "renewal_published_s": published_s, **more}


def test_the_renewal_targets_judge_each_step_until_its_events_were_published() -> None:
    """At 10,000 the CLI is done before most of its events are published, at 100,000 after: the time until they
    are published is the same work per renewal at both sizes. The 60 s limit judges it from the CLI's launch
    (an upper bound); the ratio leaves the CLI's start-up out, which counted at both sizes would flatter it."""
    from bench.report import evaluate_targets

    runs = [_billing_run(10_000, 1.4, published_s=2.2, renewal_wall_until_published_s=3.0),
            _billing_run(100_000, 18.3, published_s=20.1, renewal_wall_until_published_s=21.0)]
    targets = {t["target"]: t for t in evaluate_targets({"billing_runs": runs})}
    assert targets["10× subscriptions, renewal step time ×"]["value"] == round(20.1 / 2.2, 2)
    assert targets["renewal step over 100,000 subscriptions < 60 s"]["value"] == 21.0


@pytest.mark.parametrize(("backlog", "mark"), [(0, False), (4_000, None)])
def test_the_renewal_ratio_is_judged_only_when_the_larger_run_began_on_a_quiet_system(backlog, mark) -> None:
    from bench.report import evaluate_targets

    runs = [_billing_run(10_000, 1.0), _billing_run(100_000, 12.0, backlog)]
    [ratio] = [t for t in evaluate_targets({"billing_runs": runs}) if "renewal step time" in t["target"]]
    assert ratio["value"] == 12.0 and ratio["pass"] is mark
    assert ("not comparable" in ratio["limit"]) is (backlog > 0)


@pytest.mark.parametrize("step", ["payments", "subscribe", "gateway_get", "event_email"])
def test_a_step_with_failed_requests_fails_its_target_whatever_its_figure(step) -> None:
    from bench.report import evaluate_targets

    good = {"payments": {"per_s": 900.0, "sustained_per_s": 900.0}, "subscribe": {"flows_per_s": 300.0},
            "gateway_get": {"p99_ms": 5.0}, "event_email": {"p99_ms": 50.0}}
    results = {"ceiling": {"hop": {"completions_per_s": 1000.0, "failures": {}}}, **good}
    results[step] = {**good[step], "failures": {"status 503": 9}, "failure_count": 9, "error_rate": 0.9}
    marks = {t["target"].split(" ")[0]: t for t in evaluate_targets(results)}
    failed = marks[{"payments": "one-off", "subscribe": "subscribe", "gateway_get": "gateway",
                    "event_email": "event"}[step]]
    assert failed["pass"] is False and "failed requests: 9 (90.00%)" in failed["limit"], failed
    assert [t["pass"] for t in marks.values() if t is not failed] == [True, True, True], marks


def test_a_hop_with_failed_requests_leaves_the_ratios_to_it_unjudged() -> None:
    from bench.report import evaluate_targets, failures_seen

    results = {"ceiling": {"hop": {"completions_per_s": 1000.0, "failures": {},
                                   "failures_all_levels": {"TimeoutError": 2}}},
               "payments": {"per_s": 900.0, "sustained_per_s": 700.0, "failures": {}, "failure_count": 0}}
    [payments] = [t for t in evaluate_targets(results) if t["target"].startswith("one-off")]
    assert payments["value"] == 0.7 and payments["pass"] is None and "in the hop: 2" in payments["limit"]
    assert failures_seen(results) == {"hop": {"TimeoutError": 2}}


@pytest.mark.parametrize("fault", [{"renewed": 99_999}, {"failed": 1}, {"skipped": 3}])
def test_a_billing_run_that_did_not_renew_every_seeded_subscription_fails_its_targets(fault) -> None:
    from bench.report import evaluate_targets

    runs = [_billing_run(10_000, 1.0, published_s=1.2), _billing_run(100_000, 10.0, published_s=11.0, **fault)]
    renewal = [t for t in evaluate_targets({"billing_runs": runs}) if "renewal step" in t["target"]]
    assert len(renewal) == 2 and all(t["pass"] is False and t["faults"] for t in renewal), renewal


def test_the_failures_of_a_steps_phases_add_up() -> None:
    from bench.loadgen import LoadResult
    from bench.scenarios import _failure_figures

    peak, half = LoadResult(0, 1), LoadResult(0, 1)
    peak.outcomes.update({"ok": 90, "TimeoutError": 4})
    half.outcomes.update({"ok": 2, "TimeoutError": 3, "dropped (too many in flight)": 1})
    figures = _failure_figures(peak, half)
    assert figures["failures"] == {"TimeoutError": 7, "dropped (too many in flight)": 1}
    assert figures["failure_count"] == 8 and figures["error_rate"] == 0.08


def test_an_open_loop_call_times_from_its_scheduled_start() -> None:
    """An operation that times an instant of its own (a mail's arrival) counts from where the driver does: never
    from after its response, so a stalled request cannot shorten its own latency."""
    import asyncio

    from bench.loadgen import open_loop, started_at

    seen: list[tuple[float, float]] = []

    async def op(n: int) -> None:
        seen.append((started_at(), time.perf_counter()))
        time.sleep(0.03)  # a loop that lags: the calls after this one start late

    async def drive() -> float:
        before = time.perf_counter()
        await open_loop(op, rate=100, duration=0.05)
        return before

    before = asyncio.run(drive())
    assert len(seen) == 5
    for n, (since, called) in enumerate(seen):
        assert since == pytest.approx(before + n * 0.01, abs=0.005) and since <= called


def test_the_queues_to_wait_for_are_those_hearing_the_published_types_and_their_retries() -> None:
    from bench.drain import queues_hearing

    bindings = [line.split("\t") for line in (
        "\tinvoice\tqueue\tinvoice", "\tinvoice.retry.1000ms\tqueue\tinvoice.retry.1000ms",
        "billing.dlx\tinvoice.dlq\tqueue\tinvoice",
        "billing.events\tinvoice\tqueue\tpayment.succeeded.invoice.*",
        "billing.events\tdunning\tqueue\tpayment.failed.#", "billing.events\tnotifier\tqueue\tcustomer.created.#",
        "billing.events\tpayment\tqueue\tpayment_method.added.#",
    )]
    assert queues_hearing(bindings, {"payment.succeeded"}) == ["invoice", "invoice.retry.1000ms"]
    assert queues_hearing(bindings, {"payment.succeeded", "payment.failed"}) == ["dunning", "invoice",
                                                                                 "invoice.retry.1000ms"]
    assert queues_hearing(bindings, set()) == []


def test_usage_is_documented() -> None:
    usage = subprocess.run([sys.executable, "-m", "bench.run", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 0 and "--profile" in usage.stdout and "smoke" in usage.stdout


def test_profile_summary_counts_each_stack_under_its_own_frames(tmp_path):
    """py-spy's raw stacks start with their process when it follows a service's workers: the summary skips that
    frame, so a process is never reported as a hot frame, and a stack of it alone counts as native code."""
    from bench.profiling import summarise

    raw = tmp_path / "raw.txt"
    raw.write_text(
        'process 7:"python -m uvicorn";main (app/main.py:3);query (asyncpg/connection.py:9) 3\n'
        'process 7:"python -m uvicorn";main (app/main.py:3) 1\n'
        'process 8:"python -m uvicorn" 1\n'
    )
    lines = summarise(raw)
    assert lines[0] == "raw: 5 samples"
    own = lines[2:lines.index("  inclusive (project code and the big libraries):")]
    assert own == [
        "     60.0%  query (asyncpg/connection.py:9)",
        "     20.0%  main (app/main.py:3)",
        "     20.0%  (no Python frame: native code)",
    ]
    assert "     80.0%  main (app/main.py:3)" in lines
    assert not any("process " in line for line in lines)


def test_a_stack_set_up_but_never_started_leaves_no_vhost_behind() -> None:
    # A run interrupted between setting the stack up and starting it (Ctrl-C) must not leak a vhost.
    system = BenchSystem()
    try:
        vhosts = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True)
        assert system.vhost not in vhosts.stdout.split()
    finally:
        shutil.rmtree(system.run_dir, ignore_errors=True)


def _leftovers() -> set[str]:
    """The benchmark's vhosts and databases that exist right now."""
    vhosts = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True).stdout
    databases = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SELECT datname FROM pg_database"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {name for name in (vhosts + databases).split() if name.startswith(("billing_bench_", "bench_hop_"))}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_run_stopped_by_sigterm_removes_its_stack_like_ctrl_c(tmp_path) -> None:
    before = _leftovers()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--profile", "smoke", "--only", "payments", "--out", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # progress lines; the stack is up once it says so
            if "stack: up" in line:
                break
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the stack's processes should be running"

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 130 and "interrupted" in err, err[-2000:]
    deadline = time.monotonic() + 10
    while any(_alive(int(pid)) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(int(pid))]
    assert _leftovers() - before == set()
    assert not list(tmp_path.glob("bench-*.json"))  # an interrupted run reports nothing rather than half


def test_the_benchmark_stack_emails_invoice_links_not_rendered_pdfs() -> None:
    """A PDF per invoice (~60 ms of WeasyPrint CPU) would turn the billing runs into a PDF benchmark."""
    system = BenchSystem()
    try:
        [notifier] = [spec for spec in system.stack.specs() if spec.name == "notifier"]
        assert notifier.env["NOTIFIER_INVOICE_API_URL"] == ""  # no invoice API: no attachment fetched
    finally:
        shutil.rmtree(system.run_dir, ignore_errors=True)
