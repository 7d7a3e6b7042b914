"""Many checkpoints in one `sdk-build matrix`: the list (repeated --checkpoint, --checkpoints-file) and the
output folder each one's bundles go to.

Why one subfolder per checkpoint as soon as there are two: bundle names come from the model (size, -it, recipe,
ekv), not from the checkpoint, so thirty fine-tunes of Gemma 3 1B would all want `Gemma3-1B-IT_..._q8_ekv1280.task`
and overwrite each other in one folder. Each folder has its own manifest.json, as the server and `sdk-build catalog`
expect. One checkpoint keeps writing straight into --output, as before.

A folder is named after the end of its reference (`runs/acme/final` -> `final`; `hf:google/gemma-3-1b-it` ->
`gemma-3-1b-it`), taking as many trailing parts as it needs to differ from the others (`acme--final`).
"""

from __future__ import annotations

import re
from pathlib import Path

from sdk_build.errors import SpecError

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?!//)|^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def read_checkpoints_file(path: Path) -> list[str]:
    """One checkpoint reference per line; blank lines and `#` comments are ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SpecError(f"cannot read --checkpoints-file {path}: {exc.strerror or exc}") from None
    refs = [line.split("#", 1)[0].strip() for line in lines]
    refs = [ref for ref in refs if ref]
    if not refs:
        raise SpecError(f"--checkpoints-file {path} lists no checkpoint (one reference per line)")
    return refs


def checkpoint_list(repeated: list[str] | None, file: Path | None, default: str) -> list[str]:
    """--checkpoint values then the file's, without repeats; the matrix file's checkpoint when neither is given."""
    refs = list(repeated or []) + (read_checkpoints_file(file) if file else [])
    return list(dict.fromkeys(refs)) or [default]


def _parts(ref: str) -> list[str]:
    rest = _SCHEME.sub("", ref, count=1) if not Path(ref).exists() else str(Path(ref).resolve())
    parts = [re.sub(r"[^A-Za-z0-9._@+-]", "_", p) for p in re.split(r"[/\\]", rest) if p not in ("", ".", "..")]
    return parts or ["checkpoint"]


def output_folders(refs: list[str], output: Path) -> list[Path]:
    """Where each checkpoint's bundles go: `output` itself for one, else `output/NAME` with distinct names."""
    if len(refs) == 1:
        return [Path(output)]
    parts = [_parts(ref) for ref in refs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["--".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return [Path(output) / name for name in names]
    raise SpecError("two --checkpoint values name the same checkpoint folder; list each checkpoint once")
