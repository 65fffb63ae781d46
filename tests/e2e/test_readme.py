"""The README's walkthrough, run the way a reader runs it: its bash blocks one after the other in one shell.

Only two things change: the gateway's address and the admin key, which are this session's. A reader pauses
between blocks; the test waits instead until the system has settled (no event published or handled for a
moment), so a block that reads what the previous one set off finds it done, as the README says it will be.
Then it checks, through the API and the mail sink, that the walkthrough did what the README says it does.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from billing_api import TEST_CARDS, counter_sum, metrics_text
from billing_shared.bootstrap import SERVICES
from billing_shared.devstack import EXAMPLES
from sink_mail import assert_exactly, wait_mail

README = Path(__file__).resolve().parents[2] / "README.md"
README_API = "http://localhost:8080"
README_KEY = "<the admin key make run printed>"
DONE = "@@ block finished"


def walkthrough_blocks(readme: str) -> list[str]:
    """The bash blocks of the README's "Walkthrough with curl" section, in order."""
    start = readme.index("## Walkthrough with curl")
    end = readme.find("\n## ", start + 1)
    return re.findall(r"```bash\n(.*?)```", readme[start:end if end > 0 else None], re.S)


def assigned_names(blocks: list[str]) -> list[str]:
    """The shell variables the walkthrough sets (`NAME=` or `export NAME=` at the start of a line)."""
    names = re.findall(r"^\s*(?:export\s+)?([A-Z][A-Z_]*)=", "\n".join(blocks), re.M)
    return list(dict.fromkeys(names))


def events_moved(stack: Any) -> float:
    """Events published and handled so far, all services together: it stops growing once the system settles.
    (Each service runs as one process here, so its /metrics counts everything it did.)"""
    pages = [metrics_text(stack, service) for service in SERVICES]
    return sum(counter_sum(page, "outbox_published_total") + counter_sum(page, "events_handled_total")
               for page in pages)


def wait_until_settled(stack: Any, quiet_s: float = 1.0, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last, quiet_since = events_moved(stack), time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        if time.monotonic() > deadline:
            raise AssertionError(f"the system did not settle within {timeout}s")
        time.sleep(0.2)
        now = events_moved(stack)
        if now != last:
            last, quiet_since = now, time.monotonic()


class Shell:
    """One bash process fed block by block, as a reader pastes them; stdout and stderr together."""

    def __init__(self, cwd: Path):
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.run("set -euo pipefail")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, block: str, timeout: float = 60) -> str:
        """Run a block; its output. Fails if the shell exits (set -e: a command failed) or hangs."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{block}\necho '{DONE}'\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                raise AssertionError(f"a block hung:\n{block}\nits output so far:\n{''.join(output)}") from None
            if line is None:
                raise AssertionError(
                    f"the shell exited with {self.process.wait()} in:\n{block}\nits output:\n{''.join(output)}")
            if line.rstrip("\n") == DONE:
                break
            output.append(line)
        self.transcript.append(f"$ {block}\n{''.join(output)}")
        return "".join(output)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=10)


def test_the_walkthrough_finds_its_placeholders():
    blocks = walkthrough_blocks(README.read_text())
    first = blocks[0]
    assert f"export API={README_API}" in first and f"export KEY={README_KEY}" in first
    assert len(blocks) >= 10
    assert {"CUSTOMER", "PAYMENT", "PLAN", "SUBSCRIPTION", "INVOICE", "DECLINING"} <= set(assigned_names(blocks))


def test_make_run_prints_the_walkthroughs_first_block_with_its_own_address_and_key():
    first = walkthrough_blocks(README.read_text())[0]
    banner = EXAMPLES.format(url=README_API, key=README_KEY, mail="/tmp/mail")

    for line in first.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()  # the README's comments are for readers
        assert command in banner, f"make run does not print {command!r}"


@pytest.mark.time_travel  # its billing and dunning runs move business time a month on for every customer
def test_the_readme_walkthrough_runs_as_written_and_does_what_it_says(stack, api, tmp_path):
    blocks = walkthrough_blocks(README.read_text())
    blocks[0] = blocks[0].replace(README_API, stack.base_url).replace(README_KEY, stack.admin_key)
    shell = Shell(tmp_path)
    try:
        for block in blocks:
            shell.run(block)
            wait_until_settled(stack)
        names = assigned_names(blocks)
        values = dict(line.split("=", 1) for line in shell.run(
            "\n".join(f"printf '%s=%s\\n' {name} \"${name}\"" for name in names)).splitlines())
    finally:
        shell.close()
    transcript = "\n".join(shell.transcript)

    assert '"error"' not in transcript, transcript
    unset = [name for name in names if values.get(name, "") in ("", "null")]
    assert not unset, f"{unset} came out empty or null:\n{transcript}"

    customer = values["CUSTOMER"]
    cards = {m["id"]: m for m in api.list_all(f"/api/customers/{customer}/payment_methods")}
    default = next(m["id"] for m in cards.values() if m["is_default"])
    assert cards[default]["last4"] == TEST_CARDS["ok"][-4:] and cards[values["DECLINING"]]["last4"] == "9995"

    payments = api.payments(customer)
    one_off = sorted((p["status"], p["payment_method_id"]) for p in payments
                     if p["invoice_id"] is None and p["dunning_case_id"] is None)
    assert one_off == [("failed", values["DECLINING"]), ("succeeded", default)]  # the retried POST charged once
    assert api.payment(values["PAYMENT"])["refunded_amount"] == 1500
    [case] = api.dunning_cases(customer)
    assert (case["status"], case["failures"]) == ("recovered", 1)
    [retry] = [p for p in payments if p["dunning_case_id"] == case["id"]]
    assert (retry["status"], retry["attempt"], retry["payment_method_id"]) == ("succeeded", 2, default)

    subscriptions = api.list_all("/api/subscriptions", customer_id=customer)
    assert sorted((s["status"], s["current_period_index"]) for s in subscriptions) == [("active", 1), ("canceled", 0)]
    assert values["SUBSCRIPTION"] == next(s["id"] for s in subscriptions if s["status"] == "active")
    invoices = api.wait_invoices(customer, 3, "paid")
    first = next(i for i in invoices if i["id"] == values["INVOICE"])
    [note] = api.credit_notes(customer)
    assert note["invoice_id"] == first["id"] and 0 < note["amount"] <= first["total"]
    assert api.invoice(first["id"])["amount_refunded"] == note["amount"]

    assert first["number"] in (tmp_path / "invoice.html").read_text()
    assert (tmp_path / "invoice.pdf").read_bytes().startswith(b"%PDF")

    email = "jane@example.com"
    wait_mail(stack, email, {"invoice_paid": 3, "credit_note_issued": 1, "payment_recovered": 1, "payment_refunded": 1})
    assert_exactly(stack, email, {"welcome": 1, "payment_refunded": 1, "payment_failed": 1, "payment_recovered": 1,
                                  "invoice_finalized": 3, "invoice_paid": 3, "subscription_canceled": 1,
                                  "credit_note_issued": 1})
