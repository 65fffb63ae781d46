"""Write an nginx.conf that runs the gateway locally, in the foreground, in front of 127.0.0.1 ports.

    python gateway/render_local.py --prefix .run/gateway --port 8080 [--customer 127.0.0.1:8001 ...]
    nginx -c .run/gateway/nginx.conf -p .run/gateway -g 'daemon off;'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

NGINX_DIR = Path(__file__).resolve().parent / "nginx"

# The local ports of services/README.md; every one can be overridden on the command line.
DEFAULT_UPSTREAMS: dict[str, str] = {
    "customer": "127.0.0.1:8001",
    "payment": "127.0.0.1:8002",
    "subscription": "127.0.0.1:8003",
    "invoice": "127.0.0.1:8004",
    "dunning": "127.0.0.1:8005",
    "notifier": "127.0.0.1:8006",
    "dashboard": "127.0.0.1:8007",
}

# Debian's build points these at /var/lib/nginx, which an unprivileged run cannot write (FACTS.md).
# Shorter than the services' uvicorn --timeout-keep-alive (75 s): nginx drops an idle upstream connection
# before the service would, and never reuses one the service is closing (a POST would get a 502).
UPSTREAM_KEEPALIVE_TIMEOUT_S = 30
TEMP_PATH_DIRECTIVES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _quoted(path: Path) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _listen_address(host: str, port: int) -> str:
    # nginx cannot tell an IPv6 address's colons from the port's without the brackets ([::1]:8080).
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def render_local_config(
    prefix: Path, port: int, upstreams: Mapping[str, str], listen_host: str = "127.0.0.1"
) -> str:
    """The text of nginx.conf for a foreground run with every writable path under `prefix`."""
    prefix = prefix.resolve()
    temp_paths = "\n".join(
        f"    {name}_temp_path {_quoted(prefix / 'temp' / name)};" for name in TEMP_PATH_DIRECTIVES
    )
    upstream_blocks = "\n".join(
        f"    upstream {name} {{ server {address}; keepalive 16; keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT_S}s; }}"
        for name, address in upstreams.items()
    )
    return f"""# Written by gateway/render_local.py; edit gateway/nginx/*.conf or the script, not this file.

worker_processes 1;
pid {_quoted(prefix / "nginx.pid")};
error_log {_quoted(prefix / "logs" / "error.log")} warn;

events {{
    worker_connections 1024;
}}

http {{
    include {_quoted(NGINX_DIR / "common.conf")};
    access_log {_quoted(prefix / "logs" / "access.log")} billing_json;
{temp_paths}

{upstream_blocks}

    server {{
        listen {_listen_address(listen_host, port)};
        include {_quoted(NGINX_DIR / "routes.conf")};
    }}
}}
"""


def write_local_config(
    prefix: Path, port: int, upstreams: Mapping[str, str], listen_host: str = "127.0.0.1"
) -> Path:
    """Create the prefix's log and temp directories and write `prefix/nginx.conf`; return its path."""
    for directory in ["logs", *(f"temp/{name}" for name in TEMP_PATH_DIRECTIVES)]:
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    config_path = prefix.resolve() / "nginx.conf"
    config_path.write_text(render_local_config(prefix, port, upstreams, listen_host))
    return config_path


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", type=Path, required=True, help="directory for nginx.conf, logs and temp files")
    parser.add_argument("--port", type=int, default=8080, help="the gateway's public port")
    parser.add_argument("--listen-host", default="127.0.0.1", help="address the gateway listens on")
    for name, address in DEFAULT_UPSTREAMS.items():
        parser.add_argument(f"--{name}", default=address, metavar="HOST:PORT", help=f"default {address}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    upstreams = {name: getattr(args, name) for name in DEFAULT_UPSTREAMS}
    config_path = write_local_config(args.prefix, args.port, upstreams, args.listen_host)
    prefix = config_path.parent
    print(f"wrote {config_path}\nrun:  nginx -c {config_path} -p {prefix} -g 'daemon off;'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
