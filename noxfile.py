"""nox sessions. They run in the project's .venv (made by scripts/setup.sh): no logic here beyond calling the package.

    nox -s demo          build + verify the embedded 270M bundles, then serve the web demo on 127.0.0.1:8000
    nox -s tests         the CI test-suite (not the slow builds/benchmarks)
    nox -s slow_tests    slow tests: real 270M end to end in the browser, long builds
"""

from __future__ import annotations

import os
import sys

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]

PY = sys.executable  # the .venv's python: sessions run in it (venv backend "none"), whatever PATH says
HOST = os.environ.get("GEMMA_EDGE_HOST", "127.0.0.1")
PORT = os.environ.get("GEMMA_EDGE_PORT", "8000")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: build the default bundles for embedded:gemma3-270m, verify them, serve the demo."""
    session.run(PY, "-m", "sdk_build", "build-defaults", "--output", "bundles", "--verify")
    if "--no-serve" in session.posargs:
        return
    session.run(PY, "-m", "web_demo", "--bundles", "bundles", "--host", HOST, "--port", PORT)


@nox.session
def tests(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", "-m", "not slow", *session.posargs)


@nox.session
def slow_tests(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", "-m", "slow", *session.posargs)
