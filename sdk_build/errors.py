"""User-facing errors.

Every failure a user can cause (bad path, wrong architecture, unknown recipe...) is raised as a
`BuildError` whose message says what is wrong and what to do; the CLI prints it as one line and
exits non-zero, instead of a traceback from deep inside a converter.
"""


class BuildError(Exception):
    """A problem with the user's input or environment, with an actionable message."""


class SourceError(BuildError):
    """A checkpoint reference could not be resolved or is not a supported Gemma 3 model."""


class SpecError(BuildError):
    """A build variant is inconsistent (unknown recipe, ekv smaller than a prefill length...)."""


class VerifyError(BuildError):
    """A bundle failed verification (NaN / invalid tokens, load failure...)."""
