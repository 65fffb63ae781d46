"""The whole system as local processes: what `make run` starts, and what the e2e tests drive.

    python -m billing_shared.devstack run        start everything, print the URL, an admin key and examples
    python -m billing_shared.devstack admin-key  print a fresh admin API key and nothing else

Every service (API, relay, consumers, schedulers in one uvicorn process each), the mock payment
gateway, the dashboard, an SMTP sink and nginx on one public port run under one supervisor;
Ctrl-C stops them all. Ports, database and broker vhost are parameters, so the e2e suite runs its
own isolated stack next to a developer's.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import IO

from . import bootstrap
from .auth import write_keypair

REPO_ROOT = bootstrap.REPO_ROOT
SERVICES = bootstrap.SERVICES
SERVICE_PORT_OFFSETS = {name: i + 1 for i, name in enumerate(SERVICES)}  # customer 8001 ... notifier 8006
# uvicorn keeps an idle keep-alive connection longer than any client of it does (nginx upstreams: 30 s, see
# gateway/nginx), so a client never sends a request into a connection the server is just closing.
KEEP_ALIVE = ("--timeout-keep-alive", "75")


# Every port a stack opens, as an offset from its base port: the services, the dashboard (7), the SMTP sink
# (25, where a second stack puts it), the gateway (80) and the mock gateway (90).
STACK_PORT_OFFSETS = (*SERVICE_PORT_OFFSETS.values(), 7, 25, 80, 90)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_free_base_port(low: int, high: int, what: str) -> int:
    """A base port (a multiple of 100 in [low, high)) for a second stack, with every one of its ports free."""
    for _ in range(50):
        base = random.randrange(low, high, 100)
        if all(_port_free(base + offset) for offset in STACK_PORT_OFFSETS):
            return base
    raise RuntimeError(f"no free port range for the {what} stack")


@dataclass
class StackConfig:
    run_dir: Path = REPO_ROOT / ".run"
    database: str = "billing"
    admin_dsn: str = os.environ.get("ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    amqp_url: str = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    base_port: int = 8000  # services at base+1..6, dashboard base+7, gateway base+80, mock gateway base+90
    smtp_port: int = 1025
    log_to_files: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # uvicorn worker processes per service (default 1): each is a replica with its API, relay and consumer.
    workers: dict[str, int] = field(default_factory=dict)

    @property
    def gateway_port(self) -> int:
        return self.base_port + 80

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def port(self, name: str) -> int:
        if name in SERVICE_PORT_OFFSETS:
            return self.base_port + SERVICE_PORT_OFFSETS[name]
        return {"dashboard": self.base_port + 7, "mock-gateway": self.base_port + 90}[name]


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    health_url: str | None = None


class ManagedProcess:
    def __init__(self, spec: ProcessSpec, log_dir: Path | None):
        self.spec = spec
        self.log_dir = log_dir
        self.popen: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **self.spec.env}
        if self.log_dir is not None:
            self._log = open(self.log_dir / f"{self.spec.name}.log", "ab")
            self.popen = subprocess.Popen(
                self.spec.argv, cwd=self.spec.cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        else:
            self.popen = subprocess.Popen(
                self.spec.argv, cwd=self.spec.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        label = f"{self.spec.name:>13} | "
        for line in self.popen.stdout:
            sys.stdout.write(label + line.decode(errors="replace"))
            sys.stdout.flush()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.popen is not None
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        if self._log:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.popen is not None:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except Exception:
        return False


class Stack:
    def __init__(self, config: StackConfig | None = None):
        self.config = config or StackConfig()
        self.processes: dict[str, ManagedProcess] = {}
        self.admin_key: str | None = None

    # --- set-up ---------------------------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.config.run_dir / "keys"

    @property
    def mail_dir(self) -> Path:
        return self.config.run_dir / "mail"

    def prepare(self, progress=print, services: list[str] | None = None) -> None:
        """Database, schemas, roles and migrations; JWT keys; nginx config; a bootstrap admin key."""
        c = self.config
        for sub in ("keys", "mail", "logs", "gateway"):
            (c.run_dir / sub).mkdir(parents=True, exist_ok=True)
        progress(f"database {c.database}: schemas, roles and migrations")
        asyncio.run(bootstrap.ensure_database(c.admin_dsn, c.database))
        asyncio.run(bootstrap.apply_init_sql(c.admin_dsn, c.database))
        bootstrap.migrate_all(c.admin_dsn, c.database, services or SERVICES)
        write_keypair(self.keys_dir)
        subprocess.run(
            [sys.executable, str(REPO_ROOT / "gateway" / "render_local.py"), "--prefix", str(c.run_dir / "gateway"),
             "--port", str(c.gateway_port),
             *[arg for name in [*SERVICES, "dashboard"] for arg in (f"--{name}", f"127.0.0.1:{c.port(name)}")]],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.admin_key = self.issue_admin_key()

    def database_url(self, service: str) -> str:
        return bootstrap.service_url(self.config.admin_dsn, self.config.database, service)

    def common_env(self) -> dict[str, str]:
        c = self.config
        return {
            "AMQP_URL": c.amqp_url,
            "JWT_PUBLIC_KEY_FILE": str(self.keys_dir / "jwt_public.pem"),
            "PUBLIC_BASE_URL": c.gateway_url,
            "PYTHONUNBUFFERED": "1",
            **c.extra_env,
        }

    def issuer_env(self) -> dict[str, str]:
        """What the token issuer (the customer service) alone is given: the private key."""
        return {"JWT_PRIVATE_KEY_FILE": str(self.keys_dir / "jwt_private.pem")}

    def issue_admin_key(self) -> str:
        env = {**os.environ, **self.common_env(), **self.issuer_env(), "DATABASE_URL": self.database_url("customer")}
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "admin-key"], cwd=bootstrap.service_dir("customer"), env=env,
            check=True, capture_output=True, text=True,
        )
        return result.stdout.strip().splitlines()[-1]

    def specs(self) -> list[ProcessSpec]:
        c = self.config
        py = sys.executable
        common = self.common_env()
        specs = [
            ProcessSpec("smtp-sink", [py, "-m", "billing_shared.smtp_sink", "--port", str(c.smtp_port), "--maildir",
                                      str(self.mail_dir), *(["--quiet"] if c.log_to_files else [])],
                        REPO_ROOT, common),
            ProcessSpec("mock-gateway", [py, "-m", "mock_gateway"], bootstrap.service_dir("payment"),
                        {**common, "MOCK_GATEWAY_PORT": str(c.port("mock-gateway"))},
                        f"http://127.0.0.1:{c.port('mock-gateway')}/health"),
        ]
        for service in SERVICES:
            if not (bootstrap.service_dir(service) / "app" / "main.py").exists():
                continue
            env = {
                **common,
                "DATABASE_URL": self.database_url(service),
                "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{c.port('mock-gateway')}",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(c.smtp_port),
                # Invoice emails carry the PDF, fetched through the gateway with the event's signed link.
                "NOTIFIER_INVOICE_API_URL": c.gateway_url,
                **(self.issuer_env() if service == "customer" else {}),
                **c.extra_env,
            }
            specs.append(ProcessSpec(
                service,
                [py, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
                 "--port", str(c.port(service)), "--no-access-log", "--timeout-graceful-shutdown", "5",
                 "--workers", str(c.workers.get(service, 1)), *KEEP_ALIVE],
                bootstrap.service_dir(service), env, f"http://127.0.0.1:{c.port(service)}/health",
            ))
        if (REPO_ROOT / "gateway" / "dashboard" / "main.py").exists():
            specs.append(ProcessSpec(
                "dashboard",
                [py, "-m", "uvicorn", "--factory", "dashboard.main:create_app", "--host", "127.0.0.1",
                 "--port", str(c.port("dashboard")), "--no-access-log", *KEEP_ALIVE],
                REPO_ROOT / "gateway", {**common, "DASHBOARD_API_BASE_URL": c.gateway_url},
                f"http://127.0.0.1:{c.port('dashboard')}/health",
            ))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = c.run_dir / "gateway"
        specs.append(ProcessSpec("gateway", [nginx, "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-g",
                                             "daemon off;"], REPO_ROOT, {}, f"{c.gateway_url}/health"))
        return specs

    # --- processes ------------------------------------------------------------------------

    def start(self, names: list[str] | None = None, timeout: float = 90.0) -> None:
        log_dir = self.config.run_dir / "logs" if self.config.log_to_files else None
        chosen = [s for s in self.specs() if names is None or s.name in names]
        for spec in chosen:
            process = ManagedProcess(spec, log_dir)
            process.start()
            self.processes[spec.name] = process
        self.wait_healthy([s.name for s in chosen], timeout)

    def wait_healthy(self, names: list[str], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {n for n in names if self.processes[n].spec.health_url}
        while pending:
            for name in list(pending):
                process = self.processes[name]
                if not process.alive:
                    raise RuntimeError(f"{name} exited during start-up (exit code {process.popen.returncode}); "
                                       f"see its log")
                if _healthy(process.spec.health_url):  # type: ignore[arg-type]
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        process = self.processes[name]
        process.stop()
        process.start()
        self.wait_healthy([name], timeout)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    # --- reading results ------------------------------------------------------------------

    def emails(self) -> list[EmailMessage]:
        messages = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            messages.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
        return messages


EXAMPLES = """
The billing engine is up: {url}   (dashboard: {url}/dashboard)

Admin API key (shown once; `make admin-key` prints another):
    {key}

Try it: paste these, then the blocks of README.md's walkthrough that follow its first one:
    export API={url}
    export KEY={key}
    export TOKEN=$(curl -s -X POST $API/api/auth/token -H "Authorization: Bearer $KEY" | jq -r .access_token)
    H=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
    curl -s "$API/api/customers?limit=5" "${{H[@]}}" | jq

Mail sent to customers is printed below and kept in {mail}. Ctrl-C stops everything.
"""


def run(config: StackConfig) -> int:
    stack = Stack(config)
    stack.prepare(progress=lambda m: print(f"setting up: {m}", flush=True))
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        print(EXAMPLES.format(url=config.gateway_url, key=stack.admin_key, mail=stack.mail_dir), flush=True)
        while not stopping.is_set():
            for name, process in stack.processes.items():
                if not process.alive:
                    print(f"{name} exited (code {process.popen.returncode}); stopping everything", flush=True)
                    stopping.set()
            stopping.wait(1)
    finally:
        print("stopping...", flush=True)
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_shared.devstack", description=__doc__)
    parser.add_argument("command", choices=["run", "admin-key", "prepare"])
    parser.add_argument("--database", default=os.environ.get("BILLING_DATABASE", "billing"))
    args = parser.parse_args(argv)
    config = StackConfig(database=args.database)
    if args.command == "run":
        return run(config)
    stack = Stack(config)
    if args.command == "prepare":
        stack.prepare()
        return 0
    # admin-key: only the key on stdout, for scripts.
    stack.prepare(progress=lambda m: print(m, file=sys.stderr))
    print(stack.admin_key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
