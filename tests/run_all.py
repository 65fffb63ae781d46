"""Run every test suite, each in its own pytest process (every service's package is called `app`).

The suites that start no whole system (shared, repo, each service, the dashboard) run `TEST_LANES` at a
time (default 2, or 1 on a one-core machine). Each has its own database and RabbitMQ vhost, and most of
their time is spent waiting on Postgres, the broker and the services' own tasks. Then e2e, then the bench
smoke, alone: each starts a whole system. Prints one summary line at the end: 'N passed, N failed'.
Exit code 0 only if every suite passed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (label, working directory, pytest arguments)
SIDE_BY_SIDE = [  # the longest first, so that the lanes end together
    *[(f"services/{name}", f"services/{name}", []) for name in ("payment", "subscription")],
    ("shared", "shared", []),
    *[(f"services/{name}", f"services/{name}", []) for name in ("invoice", "notifier", "dunning", "customer")],
    ("dashboard", "gateway", []),
    ("repo", ".", ["tests/repo"]),
]
ALONE = [
    ("e2e", ".", ["tests/e2e"]),
    # After the e2e stack is gone: the two stacks together would crowd Postgres' 100 connections.
    ("bench-smoke", ".", ["bench/test_smoke.py"]),
]

COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


@dataclass
class Outcome:
    label: str
    returncode: int
    output: str
    seconds: float

    def counts(self) -> dict[str, int]:
        last = [line for line in self.output.strip().splitlines() if COUNT.search(line)]
        return {(kind.rstrip("s") if kind.startswith("error") else kind): int(n)
                for n, kind in COUNT.findall(last[-1] if last else "")}


def run_suite(label: str, cwd: str, args: list[str]) -> Outcome:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=3", *args],
        cwd=ROOT / cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Outcome(label, proc.returncode, proc.stdout, time.monotonic() - t0)


def report(outcome: Outcome) -> None:
    print(f"\n=== {outcome.label} ===", flush=True)
    sys.stdout.write(outcome.output[-6000:] if outcome.returncode == 0 else outcome.output)
    print(f"--- {outcome.label}: exit {outcome.returncode} in {outcome.seconds:.0f}s", flush=True)


def main(argv: list[str]) -> int:
    only = set(argv)
    unknown = only - {label for label, _, _ in SIDE_BY_SIDE + ALONE}
    if unknown:
        print(f"no such suite: {', '.join(sorted(unknown))}; the suites are "
              f"{', '.join(label for label, _, _ in SIDE_BY_SIDE + ALONE)}", file=sys.stderr)
        return 2
    lanes = max(1, int(os.environ.get("TEST_LANES") or min(2, os.cpu_count() or 1)))

    def wanted(label: str, cwd: str, args: list[str]) -> bool:  # asked for (or all), and in this checkout
        return (not only or label in only) and (ROOT / cwd).exists() and (not args or (ROOT / args[0]).exists())

    side_by_side = [suite for suite in SIDE_BY_SIDE if wanted(*suite)]
    alone = [suite for suite in ALONE if wanted(*suite)]
    started = time.monotonic()
    outcomes: list[Outcome] = []
    if side_by_side:
        print(f"{len(side_by_side)} suites, {lanes} at a time; then {', '.join(s[0] for s in alone) or 'nothing'} alone",
              flush=True)
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for outcome in pool.map(lambda suite: run_suite(*suite), side_by_side):
            report(outcome)  # in the listed order, each as soon as it and those before it are done
            outcomes.append(outcome)
    for suite in alone:
        outcome = run_suite(*suite)
        report(outcome)
        outcomes.append(outcome)
    totals = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for outcome in outcomes:
        for kind, n in outcome.counts().items():
            totals[kind] = totals.get(kind, 0) + n
    failed_suites = [o.label for o in outcomes if o.returncode not in (0, 5)]
    if failed_suites:
        print(f"\nFAILED suites: {', '.join(failed_suites)}")
    print(f"\nall suites finished in {time.monotonic() - started:.0f}s")
    failed = totals["failed"] + totals["error"]
    print(f"{totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failed_suites or failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
