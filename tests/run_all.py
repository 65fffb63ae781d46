"""Run every test suite, each in its own pytest process (every service's package is called `app`).

Prints one summary line at the end: 'N passed, N failed'. Exit code 0 only if every suite passed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (label, working directory, pytest arguments)
SUITES = [
    ("shared", "shared", []),
    ("repo", ".", ["tests/repo"]),
    *[(f"services/{name}", f"services/{name}", [])
      for name in ("customer", "payment", "subscription", "invoice", "dunning", "notifier")],
    ("dashboard", "gateway", []),
    ("e2e", ".", ["tests/e2e"]),
    # After the e2e stack is gone: the two stacks together would crowd Postgres' 100 connections.
    ("bench-smoke", ".", ["bench/test_smoke.py"]),
]

COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def main(argv: list[str]) -> int:
    only = set(argv)
    totals = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    failed_suites = []
    started = time.monotonic()
    for label, cwd, args in SUITES:
        if only and label not in only:
            continue
        directory = ROOT / cwd
        if not directory.exists() or (args and not (ROOT / args[0]).exists()):
            continue
        print(f"\n=== {label} ===", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sys.stdout.write(proc.stdout[-6000:] if proc.returncode == 0 else proc.stdout)
        last = [line for line in proc.stdout.strip().splitlines() if COUNT.search(line)]
        counts = dict((kind.rstrip("s") if kind.startswith("error") else kind, int(n))
                      for n, kind in COUNT.findall(last[-1] if last else ""))
        for kind in totals:
            totals[kind] += counts.get(kind, 0)
        if proc.returncode not in (0, 5):
            failed_suites.append(label)
        print(f"--- {label}: exit {proc.returncode} in {time.monotonic() - t0:.0f}s", flush=True)
    elapsed = time.monotonic() - started
    if failed_suites:
        print(f"\nFAILED suites: {', '.join(failed_suites)}")
    print(f"\nall suites finished in {elapsed:.0f}s")
    failed = totals["failed"] + totals["error"]
    print(f"{totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failed_suites or failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
