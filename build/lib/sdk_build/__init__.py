"""gemma-edge build tooling: Gemma 3 checkpoints -> on-device `.task` / `.litertlm` bundles.

The CLI (`sdk_build.cli`) only parses arguments; every stage is a plain function in its own module
(`sources`, `export`, `quantize`, `bundle`, `manifest`, `verify`) so nox, the web demo and tests call
the same code.
"""

__version__ = "0.1.0"
