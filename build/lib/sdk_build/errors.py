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


class AdapterError(BuildError):
    """A LoRA adapter folder is missing, malformed, or does not fit the model it is applied to."""


class CatalogError(BuildError):
    """A catalog cannot be built from a manifest, or one read from elsewhere is malformed or matches nothing."""


class PullError(BuildError):
    """Downloading a bundle failed (unreachable server, HTTP error, dropped connection after the retries)."""


class IntegrityError(PullError):
    """Downloaded bytes do not have the catalog's sha256 (or size); nothing was kept."""
