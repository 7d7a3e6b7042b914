"""Whether a remote endpoint answers at all, in milliseconds, before a client library retries for tens of seconds.

Shared by the checkpoint sources (ModelScope) and the catalog's Hugging Face source; it lives with the sources
because they are the lower layer (distribution imports sources, never the other way round).
"""

from __future__ import annotations

import os
import socket
import urllib.parse

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


def unreachable(endpoint: str, timeout: float) -> str | None:
    """Why `endpoint` cannot be reached right now, or None. huggingface_hub retries a refused or unresolvable
    connection for about 25 s before giving up; one TCP connect answers in milliseconds (DNS failure, refused) or
    `timeout` seconds. Behind an HTTP(S) proxy a direct connect says nothing, so the check is skipped there."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    parts = urllib.parse.urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{parts.hostname}:{port}: {exc.strerror or type(exc).__name__}"
