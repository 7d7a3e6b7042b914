"""Real English text for calibrating quantization and for scoring bundles, from one Debian package, in two sets
that share no document.

Both come from Debian's `python3.11-doc` (the Python 3.11 documentation, reStructuredText sources under
`/usr/share/doc/python3.11/html/_sources`; Python Software Foundation License Version 2, per the package's
`copyright` file; `scripts/setup.sh` installs it):
- CALIBRATION: chapters of the Python Tutorial. GPTQ and OSCAR recipes collect their activation statistics on it.
- HELD_OUT: three HOWTOs. `sdk-build verify`'s perplexity and the benchmarks score on it, and never calibrate on it,
  so a calibrated recipe cannot look better by having seen the text it is judged on.

Only prose paragraphs are kept (a paragraph that starts with a letter; code blocks, tables, directives and titles
are indented or start with punctuation), reST roles and emphasis are reduced to their text, and each paragraph is
one line. A set's fingerprint is the sha256 of its name and of the bytes of its files, so a changed package changes
every build that calibrated on it (`sdk_build.pipeline.spec_fingerprint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

from sdk_build.errors import BuildError

DOC_ROOT = Path("/usr/share/doc/python3.11/html/_sources")
DEBIAN_PACKAGE = "python3.11-doc"
LICENCE = "Python Software Foundation License Version 2"

_ROLE = re.compile(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]*)``")
_LINK = re.compile(r"`([^`<]*?)\s*<[^>]*>`_+")
_EMPHASIS = re.compile(r"\*\*?([^*]+)\*\*?")


@dataclasses.dataclass(frozen=True)
class TextSet:
    """A named list of documents of one installed package."""

    name: str
    files: tuple[str, ...]
    root: Path = DOC_ROOT
    package: str = DEBIAN_PACKAGE
    licence: str = LICENCE

    def paths(self) -> list[Path]:
        paths = [self.root / name for name in self.files]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise BuildError(
                f"the {self.name} text set needs {missing[0]} from Debian's {self.package} package; install it "
                f"(apt-get install {self.package}, which bash scripts/setup.sh does)"
            )
        return paths

    def paragraphs(self) -> list[str]:
        """The prose paragraphs of every file, in order, each on one line."""
        return [p for path in self.paths() for p in prose_paragraphs(path.read_text(encoding="utf-8"))]

    def text(self) -> str:
        return "\n\n".join(self.paragraphs())

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.name.encode())
        for path in self.paths():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "package": self.package, "licence": self.licence, "files": list(self.files),
                "fingerprint": self.fingerprint()}


def prose_paragraphs(source: str) -> list[str]:
    """The paragraphs of a reStructuredText source that are running text, with inline markup reduced to text."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", source):
        lines = block.splitlines()
        if not lines or not lines[0][:1].isalpha() or lines[0].rstrip().endswith("::"):
            continue
        if len(lines) > 1 and set(lines[1].strip()) <= set("=-~^*#+"):
            continue  # a section title
        text = " ".join(line.strip() for line in lines)
        for pattern in (_ROLE, _LINK, _LITERAL, _EMPHASIS):
            text = pattern.sub(r"\1", text)
        text = text.replace("\\", "")
        if len(text.split()) >= 8:
            paragraphs.append(text)
    return paragraphs


CALIBRATION = TextSet(
    "python-tutorial",
    (
        "tutorial/appetite.rst.txt",
        "tutorial/interpreter.rst.txt",
        "tutorial/introduction.rst.txt",
        "tutorial/controlflow.rst.txt",
        "tutorial/datastructures.rst.txt",
        "tutorial/modules.rst.txt",
        "tutorial/inputoutput.rst.txt",
        "tutorial/errors.rst.txt",
        "tutorial/classes.rst.txt",
    ),
)
"""What GPTQ and OSCAR calibrate on (sdk_build.convert.calibration)."""

HELD_OUT = TextSet(
    "python-howtos",
    ("howto/functional.rst.txt", "howto/sorting.rst.txt", "howto/unicode.rst.txt"),
)
"""What verify's perplexity and the benchmarks score on: no document of CALIBRATION."""
