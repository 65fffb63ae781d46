"""Test doubles with real network ends: an SMTP server (aiosmtpd) and the invoice service's token and PDF API."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Annotated, Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

INVOICE_API_KEY = "bk_test_notifier_admin"
PDF_BYTES = b"%PDF-1.7\n% a stand-in invoice\n%%EOF\n"


def listening_socket(host: str, port: int = 0, *, attempts: int = 8) -> socket.socket:
    """A socket bound to host:port (0: a port the OS picks, bound from then on) and listening.

    Binding a known port again (a server restarted on its port) is retried a few times while the port is in use:
    another process may have bound it, or connected from it, while the server was stopped.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    attempt = 1
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen()
            return sock
        except OSError as error:
            sock.close()
            if port == 0 or error.errno != errno.EADDRINUSE or attempt == attempts:
                if port:
                    error.add_note(f"binding {host}:{port} again, attempt {attempt} of {attempts}")
                raise
        time.sleep(0.05 * attempt)  # a retry's backoff, not a wait for another step of the test
        attempt += 1


class _SocketController(Controller):
    """aiosmtpd's threaded controller, serving on a socket bound beforehand: a bind error is raised at once by the
    caller rather than after the controller's ready timeout, and port 0 is bound by the server itself."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class _CollectingHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        await asyncio.sleep(self._sink.command_delay_s)
        if self._sink.mail_replies:
            return self._sink.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self._sink.mail_options.append(list(mail_options))
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        await asyncio.sleep(self._sink.command_delay_s)
        if address in self._sink.unknown_mailboxes:
            return "550 5.1.1 No such user"
        if address in self._sink.policy_refused_mailboxes:
            return f"554 5.7.1 <{address}>: Recipient address rejected: Access denied"
        if self._sink.rcpt_replies:
            return self._sink.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self._sink.data_delay_s)  # a server that checks the message before accepting it
        raw = envelope.original_content or envelope.content
        self._sink.raw.append(raw)  # type: ignore[arg-type]
        self._sink.messages.append(message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        self._sink.peers.append(session.peer)
        self._sink.rcpt_tos.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server that can be started and stopped; messages survive restarts.

    The first start binds the port given, or else one the OS picks (`port` is known from then on); a start after
    stop() binds that same port again (the client under test is configured with it).
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, smtputf8: bool = False) -> None:
        self.host = host
        self.port = port or 0
        self.smtputf8 = smtputf8  # offer the SMTPUTF8 extension (RFC 6531) for non-ASCII addresses
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # each message's bytes as received
        self.mail_options: list[list[str]] = []  # the options of each accepted MAIL command, e.g. ["SMTPUTF8"]
        self.peers: list[Any] = []  # the client's (host, port) of each message: one per SMTP connection
        self.rcpt_tos: list[list[str]] = []  # the RCPT TO addresses of each message, as the client sent them
        # Replies such as "421 4.4.2 closing connection" given to the next MAIL commands instead of accepting them.
        self.mail_replies: list[str] = []
        # Replies such as "451 4.3.0 try later" given to the next RCPT commands instead of accepting them.
        self.rcpt_replies: list[str] = []
        # Addresses refused for good ("550 No such user") on every attempt.
        self.unknown_mailboxes: set[str] = set()
        # Addresses refused on every attempt by a security or policy rule ("554 5.7.1 ... Access denied").
        self.policy_refused_mailboxes: set[str] = set()
        # How long the server takes to answer each MAIL and RCPT command (a slow server).
        self.command_delay_s = 0.0
        # How long it takes to accept a message once it has all of it (e.g. a content scan); it accepts it regardless.
        self.data_delay_s = 0.0
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Blocks until the server accepts connections (aiosmtpd runs it in its own thread)."""
        if self._controller is None:
            sock = listening_socket(self.host, self.port)
            try:
                controller = _SocketController(_CollectingHandler(self), sock, enable_SMTPUTF8=self.smtputf8)
                controller.start()
            except BaseException:
                sock.close()
                raise
            self.port = controller.port
            self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class FakeInvoiceApi:
    """The invoice service's two endpoints the notifier calls, and what it was asked."""

    def __init__(self) -> None:
        # Bound (to a port the OS picks) until the server given it stops: serve it with `sockets=[fake.socket]`.
        self.socket = listening_socket("127.0.0.1")
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.pdf_invoice_ids: set[str] = set()
        self.token_exchanges = 0
        self.pdf_connections: dict[str, tuple[str, int]] = {}  # invoice id -> the client's (host, port)
        self.app = self._build()

    def _build(self) -> Any:
        api = FastAPI()

        @api.post("/api/auth/token")
        async def create_token(authorization: Annotated[str, Header()] = "") -> Any:
            if authorization != f"Bearer {INVOICE_API_KEY}":
                return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
            self.token_exchanges += 1
            return {"access_token": f"token-{self.token_exchanges}", "token_type": "bearer", "expires_in": 900}

        @api.get("/api/invoices/{invoice_id}.pdf")
        async def read_invoice_pdf(
            invoice_id: str, request: Request, authorization: Annotated[str, Header()] = ""
        ) -> Any:
            if request.client is not None:
                self.pdf_connections[invoice_id] = (request.client.host, request.client.port)
            if not authorization.startswith("Bearer token-"):
                return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
            if invoice_id not in self.pdf_invoice_ids:
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            return Response(PDF_BYTES, media_type="application/pdf")

        return api
