"""`modelscope:ORG/NAME[@REV]`: a checkpoint downloaded from ModelScope through its own SDK, as `hf:` is from
Hugging Face.

Many users (in China above all) get Gemma from ModelScope, where the same repositories exist (seed 004:
`LLM-Research/gemma-3-1b-it`, the MLX and GGUF repos). The folder it gives is then read like a local one (a
Hugging Face or MLX folder). The SDK retries an unreachable server for about 25 seconds before giving up; one
TCP connect to the endpoint first answers in milliseconds or a few seconds, so offline the reference fails fast
and says so, and a snapshot already in the cache is used without the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sdk_build.errors import SourceError

_REF = re.compile(r"^modelscope:([\w.-]+/[\w.-]+)(?:@([\w./-]+))?$")
DEFAULT_ENDPOINT = "https://modelscope.cn"
CONNECT_TIMEOUT_S = 5.0
PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.jinja"]


def parse_reference(ref: str) -> tuple[str, str | None]:
    match = _REF.match(ref)
    if not match:
        raise SourceError(f"bad ModelScope reference {ref!r}; use modelscope:ORG/NAME or modelscope:ORG/NAME@REVISION")
    return match.group(1), match.group(2)


def endpoint() -> str:
    """The server the SDK talks to: `MODELSCOPE_ENDPOINT` (or the older `MODELSCOPE_DOMAIN`), else modelscope.cn."""
    configured = os.environ.get("MODELSCOPE_ENDPOINT") or os.environ.get("MODELSCOPE_DOMAIN") or DEFAULT_ENDPOINT
    return configured if "://" in configured else f"https://{configured}"


def modelscope_download(ref: str, cache: Path) -> Path:
    """Download (or find in the cache) the checkpoint files of `ref`; return the local folder."""
    repo, revision = parse_reference(ref)
    try:
        from modelscope import snapshot_download
    except ImportError as exc:
        raise SourceError("modelscope: references need the modelscope SDK; run: pip install modelscope") from exc
    from sdk_build.catalog_source import _unreachable

    server = endpoint()
    why = _unreachable(server, CONNECT_TIMEOUT_S)
    target = cache / "modelscope"
    try:
        path = snapshot_download(repo, revision=revision, cache_dir=str(target), allow_patterns=PATTERNS,
                                 local_files_only=why is not None)
    except Exception as exc:  # the SDK raises its own HubError family, requests' errors, ValueError...
        if why is not None:
            raise SourceError(
                f"cannot download {repo} from ModelScope ({server} unreachable: {why}) and it is not in {target}; "
                "download it elsewhere and pass the local folder to --checkpoint"
            ) from exc
        raise SourceError(f"downloading {repo} from ModelScope failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
    folder = Path(path)
    if not any(folder.glob("*.safetensors")):
        raise SourceError(f"ModelScope's {repo} has no *.safetensors weights (a GGUF repository? download the one "
                          ".gguf file and pass its path to --checkpoint)")
    return folder
