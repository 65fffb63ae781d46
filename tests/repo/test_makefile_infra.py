"""`make infra` against stand-ins for pg_isready, rabbitmqctl and rabbitmq-server (the machine's own broker is left
alone): a running broker is used as it is, a node whose app was stopped gets `start_app`, a missing node is started."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gateway_harness import REPO_ROOT

FAKE_RABBITMQCTL = """#!/bin/bash
# state: running | app-stopped | down
echo "rabbitmqctl $*" >> "$FAKE_DIR/calls"
state=$(cat "$FAKE_DIR/state")
args=" $* "
case "$args" in
  *" await_startup "*) [ "$state" = running ] && exit 0; [ "$state" = down ] && exit 69; exit 1 ;;
  *" start_app "*) [ "$state" = down ] && exit 69; echo running > "$FAKE_DIR/state"; exit 0 ;;
esac
exit 64
"""
FAKE_RABBITMQ_SERVER = """#!/bin/bash
echo "rabbitmq-server $*" >> "$FAKE_DIR/calls"
[ "$(cat "$FAKE_DIR/state")" = down ] && echo running > "$FAKE_DIR/state"
exit 0
"""
FAKE_PG_ISREADY = """#!/bin/bash
exit 0
"""


def run_infra(tmp_path: Path, state: str) -> tuple[list[str], str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("rabbitmqctl", FAKE_RABBITMQCTL), ("rabbitmq-server", FAKE_RABBITMQ_SERVER),
                         ("pg_isready", FAKE_PG_ISREADY)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "state").write_text(state + "\n")
    (tmp_path / "calls").write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path)}
    result = subprocess.run(["make", "--no-print-directory", "infra"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return (tmp_path / "calls").read_text().splitlines(), (tmp_path / "state").read_text().strip(), result.stderr


def test_a_running_broker_is_used_as_it_is(tmp_path: Path) -> None:
    calls, state, _ = run_infra(tmp_path, "running")

    assert calls == ["rabbitmqctl -q await_startup --timeout 2"]
    assert state == "running"


def test_a_node_whose_app_was_stopped_gets_its_app_started_not_a_second_node(tmp_path: Path) -> None:
    calls, state, stderr = run_infra(tmp_path, "app-stopped")

    assert "rabbitmqctl -q start_app" in calls
    assert not any(call.startswith("rabbitmq-server") for call in calls)
    assert state == "running" and "started the RabbitMQ app" in stderr


def test_a_missing_node_is_started(tmp_path: Path) -> None:
    calls, final, stderr = run_infra(tmp_path, "down")

    assert calls.index("rabbitmqctl -q start_app") < calls.index("rabbitmq-server -detached")
    assert calls[-1] == "rabbitmqctl -q await_startup --timeout 120"
    assert final == "running" and "starting RabbitMQ" in stderr
