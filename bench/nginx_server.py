"""nginx as the serving benchmark's reference: Debian's package, started as a child on a free loopback port.

What a user would put in front of a bundle folder instead of our server: nginx with `sendfile on` (the kernel
copies file pages straight to the socket), one worker per core, logging off. Everything nginx writes (pid, error
log, temp folders) goes to a private prefix folder, so it needs no root, touches no system configuration and can
run beside a system nginx.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.children import child_process, http_ok, wait_until

INSTALL_HINT = (
    "nginx is not installed; install Debian's package as root: `apt-get install -y nginx` "
    "(or put an nginx binary on PATH, or pass --nginx /path/to/nginx)"
)


class NginxMissing(RuntimeError):
    pass


def find_nginx(explicit: str | None = None) -> str:
    for candidate in (explicit, shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NginxMissing(INSTALL_HINT)


def nginx_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


def render_config(root: Path, prefix: Path, host: str, port: int) -> str:
    """A minimal static-file server for `root`; `user` only matters (and is only written) when run as root."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = {name: prefix / "tmp" / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""{user}worker_processes auto;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server {{
        listen {host}:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


@contextlib.contextmanager
def running_nginx(
    root: Path, prefix: Path, host: str, port: int, probe_path: str, binary: str | None = None
) -> Iterator[str]:
    """Serve `root` on host:port until the block ends; yield the base URL once `probe_path` answers."""
    nginx = find_nginx(binary)
    prefix.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render_config(root.resolve(), prefix.resolve(), host, port))
    log = prefix / "stdout.log"
    command = [nginx, "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    base = f"http://{host}:{port}"
    with child_process(command, log) as process:
        wait_until(
            lambda: http_ok(base + probe_path, method="HEAD"), process, prefix / "error.log", what="nginx", timeout_s=30
        )
        yield base
