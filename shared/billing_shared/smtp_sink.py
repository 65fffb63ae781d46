"""A local SMTP sink for development and tests: prints a summary of each mail and keeps it as .eml.

    python -m billing_shared.smtp_sink --port 1025 --maildir .run/mail
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller


class _SaveAndPrint:
    def __init__(self, maildir: Path, quiet: bool):
        self.maildir = maildir
        self.quiet = quiet

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.maildir / name)  # atomic: readers never see half a mail
        if not self.quiet:
            message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
            body = message.get_body(("plain",))
            text = body.get_content().strip() if body is not None else ""
            print(f"--- mail to {', '.join(envelope.rcpt_tos)}: {message['Subject']}\n{text}\n", flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_shared.smtp_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=Path(".run/mail"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(_SaveAndPrint(args.maildir, args.quiet), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port}, mail kept in {args.maildir}", flush=True)

    async def wait_for_signal() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait_for_signal())
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
