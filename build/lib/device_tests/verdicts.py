"""The words a verdict can be, and how several checks combine into one line per result.

They are plain strings because they go verbatim into JSON, HTML and the terminal, and the issue fixes
their wording ("different device: no verdict", "no baseline", "unstable").
"""

from __future__ import annotations

from collections.abc import Iterable

PASS = "pass"
FAIL = "fail"
UNSTABLE = "unstable"
NO_BASELINE = "no baseline"
DIFFERENT_DEVICE = "different device: no verdict"
NO_HISTORY = "no history"
UNSUPPORTED = "unsupported"
ERROR = "error"

# Worst first: the overall verdict of a result is the first of these that any of its checks gave.
SEVERITY = (ERROR, FAIL, UNSTABLE, PASS, DIFFERENT_DEVICE, NO_BASELINE, UNSUPPORTED, NO_HISTORY)
FAILING = frozenset({ERROR, FAIL})
"""Verdicts that make the CLI exit non-zero."""


def overall(verdicts: Iterable[str]) -> str:
    found = set(verdicts)
    return next((v for v in SEVERITY if v in found), NO_BASELINE)


def combine(published: Iterable[str], history: Iterable[str]) -> str:
    """One verdict per result: a failing or unstable check wins; otherwise what the published figures say.

    A pass against the last run must not read as a pass against Google's figure, so history only ever makes
    a result worse ("different device: no verdict" stays that, however the history went).
    """
    published, history = list(published), list(history)
    bad = [v for v in published + history if v in (ERROR, FAIL, UNSTABLE)]
    return overall(bad) if bad else overall(published)
