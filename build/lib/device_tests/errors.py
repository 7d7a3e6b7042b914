"""The one exception type the lab raises for problems a user can fix; the CLI turns it into one line."""

from __future__ import annotations


class LabError(Exception):
    """Bad data file, bad option, missing bundle or runner prerequisite: the message says what to do."""
