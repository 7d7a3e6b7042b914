"""Convert a checkpoint into the cache once, as a whole folder or not at all.

GGUF and MLX checkpoints are dequantized into fp32 Hugging Face safetensors under the cache. The conversion
writes into a private temporary folder beside the target and renames it into place only when every file is
written, so a failure (a corrupt tensor found half way, Ctrl-C, a full disk) leaves nothing behind, and two
builds converting the same checkpoint at once cannot mix their files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sdk_build.system.atomic import _umask, check_free_space
from sdk_build.system.progress import status


def materialized(target: Path, write: Callable[[Path], None], label: str, needed_bytes: int) -> Path:
    """`target` if it is already converted; otherwise `write(tmp)` into a fresh folder, then rename it to `target`."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(target.parent, needed_bytes)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the cache is shared like the bundles
    try:
        with status(label):
            write(tmp)
        if target.exists():  # a folder left by an older, non-atomic conversion
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
