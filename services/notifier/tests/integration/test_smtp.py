"""SmtpSender against a real SMTP server (aiosmtpd): delivery, connection reuse, outages, recovery, refusals."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import time
from collections.abc import Callable, Iterator
from email.message import Message

import pytest

from app.rendering import Attachment, RenderedEmail, build_message
from app.smtp import SmtpRecipientRefusedByPolicy, SmtpRejected, SmtpSender, SmtpUnavailable
from tests.fakes import SmtpSink

RETRY_LOG = "app.smtp"


def make_message(subject: str = "Receipt for invoice INV-1") -> Message:
    rendered = RenderedEmail(subject=subject, text="Hello Ada,\n", html="<p>Hello Ada,</p>")
    return build_message(rendered, "Billing <billing@example.com>", "ada@example.com")


def fast_sender(sink: SmtpSink, attempts: int) -> SmtpSender:
    return SmtpSender(sink.host, sink.port, timeout=2, attempts=attempts, backoff_initial=0.01, backoff_max=0.05)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_sent_message_arrives_with_its_recipient_and_subject(smtp_sink: SmtpSink) -> None:
    await fast_sender(smtp_sink, attempts=1).send(make_message("Receipt for invoice INV-1"))

    assert len(smtp_sink.messages) == 1
    received = smtp_sink.messages[0]
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == "Receipt for invoice INV-1"
    assert received.get_body(("html",)).get_content().strip() == "<p>Hello Ada,</p>"


async def test_consecutive_sends_reuse_one_connection(smtp_sink: SmtpSink) -> None:
    sender = fast_sender(smtp_sink, attempts=1)

    for n in range(3):
        await sender.send(make_message(f"Receipt {n}"))
    await sender.aclose()

    assert [m["Subject"] for m in smtp_sink.messages] == ["Receipt 0", "Receipt 1", "Receipt 2"]
    assert len(set(smtp_sink.peers)) == 1
    assert sender.connections_opened == 1


async def test_a_connection_dropped_by_a_server_restart_is_reopened_within_one_attempt(smtp_sink: SmtpSink) -> None:
    sender = fast_sender(smtp_sink, attempts=1)  # no backoff retries: the reconnect must happen inside the attempt
    await sender.send(make_message("Before the restart"))
    smtp_sink.stop()
    smtp_sink.start()

    await sender.send(make_message("After the restart"))
    await sender.aclose()

    assert [m["Subject"] for m in smtp_sink.messages] == ["Before the restart", "After the restart"]
    assert len(set(smtp_sink.peers)) == 2
    assert sender.connections_opened == 2


async def test_a_pooled_connection_the_server_closes_before_data_is_retried_once_on_a_fresh_one(
    smtp_sink: SmtpSink,
) -> None:
    sender = fast_sender(smtp_sink, attempts=1)
    await sender.send(make_message("First"))
    smtp_sink.mail_replies.append("421 4.4.2 Idle too long, closing connection")  # the reused connection's MAIL

    await sender.send(make_message("Second"))
    await sender.aclose()

    assert [m["Subject"] for m in smtp_sink.messages] == ["First", "Second"]  # sent exactly once
    assert smtp_sink.mail_replies == []
    assert sender.connections_opened == 2


async def test_server_down_raises_smtp_unavailable_after_every_attempt(
    smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_sink.stop()
    caplog.set_level(logging.WARNING, logger=RETRY_LOG)

    with pytest.raises(SmtpUnavailable) as raised:
        await fast_sender(smtp_sink, attempts=3).send(make_message())

    assert raised.value.attempts == 3
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert len([r for r in caplog.records if r.name == RETRY_LOG]) == 2  # a retry after each failure but the last
    assert smtp_sink.messages == []


async def test_server_back_while_retrying_delivers_exactly_once(
    smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_sink.stop()
    caplog.set_level(logging.WARNING, logger=RETRY_LOG)

    async def start_after_first_failure() -> None:
        await wait_until(lambda: any(r.name == RETRY_LOG for r in caplog.records))
        await asyncio.to_thread(smtp_sink.start)

    restart = asyncio.create_task(start_after_first_failure())
    sender = SmtpSender(smtp_sink.host, smtp_sink.port, timeout=2, attempts=100, backoff_initial=0.02, backoff_max=0.1)
    await sender.send(make_message("Your payment of $49.99 failed"))
    await restart

    assert [m["Subject"] for m in smtp_sink.messages] == ["Your payment of $49.99 failed"]


async def test_a_temporary_refusal_is_retried_and_then_delivered(smtp_sink: SmtpSink) -> None:
    smtp_sink.rcpt_replies.append("451 4.3.0 Mailbox temporarily unavailable")

    await fast_sender(smtp_sink, attempts=3).send(make_message())

    assert smtp_sink.rcpt_replies == []
    assert len(smtp_sink.messages) == 1


async def test_a_permanent_refusal_raises_smtp_rejected_without_retrying(smtp_sink: SmtpSink) -> None:
    smtp_sink.rcpt_replies.extend(["550 5.1.1 No such user", "550 5.1.1 No such user"])

    with pytest.raises(SmtpRejected, match="No such user"):
        await fast_sender(smtp_sink, attempts=3).send(make_message())

    assert len(smtp_sink.rcpt_replies) == 1  # only one RCPT was tried
    assert smtp_sink.messages == []


@pytest.fixture
def smtputf8_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(smtputf8=True)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


async def test_a_non_ascii_subject_sender_name_and_body_arrive_exactly_as_rendered(smtp_sink: SmtpSink) -> None:
    rendered = RenderedEmail(
        subject="Ihre Zahlung über 1.234,56 € ist fehlgeschlagen — letzter Versuch am 12. März 2027, Zoë",
        text="Hallo Zoë,\n\nBetrag: 1.234,56 €\n.\nFrom March 3: ça va.\n",
        html="<p>Hallo Zoë,</p>\n<p>Betrag: 1.234,56 €</p>\n",
    )
    invoice = Attachment("Rechnung-März.pdf", b"%PDF-1.7\n.\r\n\x00\xff")
    message = build_message(rendered, "Zoë Billing <billing@example.com>", "ada@example.com", [invoice])

    await fast_sender(smtp_sink, attempts=1).send(message)

    [received] = smtp_sink.messages
    smtp_sink.raw[0].decode("ascii")  # 7-bit clean
    [mail_options] = smtp_sink.mail_options
    assert "SMTPUTF8" not in mail_options  # not needed for ASCII addresses
    assert received["Subject"] == rendered.subject
    assert received["From"].addresses[0].display_name == "Zoë Billing"
    assert received["From"].addresses[0].addr_spec == "billing@example.com"
    for subtype, body in {"plain": rendered.text, "html": rendered.html}.items():
        assert received.get_body((subtype,)).get_content() == body.replace("\n", "\r\n")  # SMTP's line ends
    [attachment] = received.iter_attachments()
    assert (attachment.get_filename(), attachment.get_content()) == ("Rechnung-März.pdf", invoice.content)


async def test_a_non_ascii_recipient_address_is_sent_with_smtputf8_and_raw_utf8_headers(
    smtputf8_sink: SmtpSink,
) -> None:
    rendered = RenderedEmail(subject="Willkommen, Zoë", text="Hallo Zoë,\n", html="<p>Hallo Zoë,</p>\n")
    message = build_message(rendered, "Zoë Billing <billing@example.com>", "zoë@example.com")

    await fast_sender(smtputf8_sink, attempts=1).send(message)

    [raw] = smtputf8_sink.raw
    [mail_options] = smtputf8_sink.mail_options
    assert "SMTPUTF8" in mail_options
    received = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert received["To"].addresses[0].addr_spec == "zoë@example.com"
    assert received["Subject"] == "Willkommen, Zoë"
    assert received["From"].addresses[0].display_name == "Zoë Billing"
    assert received.get_body(("plain",)).get_content() == "Hallo Zoë,\r\n"


async def test_an_internationalised_domain_reaches_a_server_without_smtputf8_as_its_idna_form(
    smtp_sink: SmtpSink,
) -> None:
    message = build_message(RenderedEmail("Hi", "Hi\n", "<p>Hi</p>\n"), "billing@example.com", "jo@bücher.de")

    await fast_sender(smtp_sink, attempts=1).send(message)

    [received] = smtp_sink.messages
    [mail_options] = smtp_sink.mail_options
    assert "SMTPUTF8" not in mail_options
    assert received["To"] == "jo@xn--bcher-kva.de"
    assert smtp_sink.rcpt_tos == [["jo@xn--bcher-kva.de"]]


async def test_a_non_ascii_recipient_address_is_refused_for_good_by_a_server_without_smtputf8(
    smtp_sink: SmtpSink,
) -> None:
    message = build_message(RenderedEmail("Hi", "Hi\n", "<p>Hi</p>\n"), "billing@example.com", "zoë@example.com")

    with pytest.raises(SmtpRejected, match="SMTPUTF8"):
        await fast_sender(smtp_sink, attempts=3).send(message)

    assert smtp_sink.messages == []


async def test_a_refusal_of_the_client_rather_than_the_message_is_retried_not_final(smtp_sink: SmtpSink) -> None:
    # "530 Authentication required" (or a wrong password's 535) would refuse every email alike until the setup is
    # fixed: the email must wait for that, not be logged as refused for good.
    smtp_sink.mail_replies.extend(["530 5.7.0 Authentication required"] * 3)

    with pytest.raises(SmtpUnavailable, match="Authentication required"):
        await fast_sender(smtp_sink, attempts=3).send(make_message())

    assert smtp_sink.mail_replies == []  # tried three times
    assert smtp_sink.messages == []


async def test_a_recipient_refused_for_a_security_or_policy_reason_is_retried_not_final(smtp_sink: SmtpSink) -> None:
    # "554 5.7.1 Relay access denied" refuses this client (a relay set up wrongly), and every email with it: the
    # email must wait for the fix (retries, then the DLQ for replay), not be logged as refused for good.
    smtp_sink.rcpt_replies.extend(["554 5.7.1 <ada@example.com>: Relay access denied"] * 3)

    with pytest.raises(SmtpRecipientRefusedByPolicy, match="Relay access denied"):
        await fast_sender(smtp_sink, attempts=3).send(make_message())

    assert smtp_sink.rcpt_replies == []  # tried three times
    assert smtp_sink.messages == []


@pytest.mark.parametrize("reply", ["550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown",
                                   "553 5.1.3 Bad recipient address syntax", "550 Mailbox unavailable"])
async def test_a_recipient_refused_for_another_permanent_reason_stays_final(smtp_sink: SmtpSink, reply: str) -> None:
    smtp_sink.rcpt_replies.extend([reply] * 2)

    with pytest.raises(SmtpRejected):
        await fast_sender(smtp_sink, attempts=3).send(make_message())

    assert len(smtp_sink.rcpt_replies) == 1  # only one RCPT was tried


async def test_a_server_answering_each_command_just_in_time_cannot_stretch_an_attempt_past_the_timeout(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.command_delay_s = 0.4  # MAIL and RCPT each answer within the 0.6 s timeout, together they do not
    sender = SmtpSender(smtp_sink.host, smtp_sink.port, timeout=0.6, attempts=2, backoff_initial=0.01, backoff_max=0.05)

    started = time.monotonic()
    with pytest.raises(SmtpUnavailable) as raised:
        await sender.send(make_message())

    assert time.monotonic() - started < 2 * 0.6 + 2  # two attempts of 0.6 s (and slack for a slow machine), not 4 x 0.4
    assert raised.value.attempts == 2
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert smtp_sink.messages == []


async def test_once_data_is_sent_the_server_gets_a_whole_timeout_to_accept_so_a_slow_accept_is_not_sent_twice(
    smtp_sink: SmtpSink,
) -> None:
    # MAIL and RCPT take most of the attempt's 0.8 s; the server then takes 0.5 s to accept the message. Cut short
    # there, the attempt would be retried and the message, accepted meanwhile, sent again.
    smtp_sink.command_delay_s, smtp_sink.data_delay_s = 0.3, 0.5
    sender = SmtpSender(smtp_sink.host, smtp_sink.port, timeout=0.8, attempts=2, backoff_initial=0.01, backoff_max=0.05)

    await sender.send(make_message("Receipt for invoice INV-9"))
    await sender.aclose()
    await asyncio.sleep(0.6)  # a second copy, had one been sent, would be in by now

    assert [m["Subject"] for m in smtp_sink.messages] == ["Receipt for invoice INV-9"]
