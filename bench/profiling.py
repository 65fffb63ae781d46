"""Optional sampling profiles of the services while the benchmark drives them (py-spy, if installed).

    python -m bench.run --profile smoke --py-spy notifier,invoice

Each named process is sampled for the whole system phase; the raw stacks are saved next to the results and
summarised (hottest frames by own time and by inclusive time) at the end of the run.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    return shutil.which("py-spy") or (str(Path(sys.executable).with_name("py-spy"))
                                      if Path(sys.executable).with_name("py-spy").exists() else None)


class Sampler:
    def __init__(self, name: str, pid: int, out: Path, rate: int = 100):
        self.name, self.out = name, out
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--output", str(out), "--rate", str(rate),
             "--nonblocking", "--gil", "--subprocesses"],  # a service run with --workers N: its workers
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def summarise(raw: Path, top: int = 15) -> list[str]:
    """The hottest frames of a py-spy raw file: own time and inclusive time, as shares of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return [f"{raw.name}: no samples"]
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[0].startswith("process "):  # with --subprocesses, each stack starts with its process
            frames = frames[1:] or ["(no Python frame: native code)"]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return [f"{raw.name}: no samples"]
    lines = [f"{raw.stem}: {total} samples", "  own time:"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive (project code and the big libraries):")
    interesting = [(f, n) for f, n in inclusive.most_common() if any(
        key in f for key in ("(app/", "billing_shared", "bench/", "weasyprint", "sqlalchemy/orm/session",
                             "asyncpg/connection", "aiosmtplib", "httpx/_client", "aio_pika", "pydantic/main",
                             "jinja2/environment"))]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in interesting[:top]]
    return lines
