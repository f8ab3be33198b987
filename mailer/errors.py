"""Exceptions raised by citymail's core.

    CitymailError
     ├── SettingsError      a CITYMAIL_* variable is missing or malformed
     ├── NotFound           a list, member or held message that does not exist
     ├── InvalidInput       a value from a user (address, name, CSV row) is unusable
     └── StorageError       the database refused or is unreachable
"""

from __future__ import annotations

__all__ = ["CitymailError", "InvalidInput", "NotFound", "SettingsError", "StorageError"]


class CitymailError(Exception):
    """Base of every error citymail reports to a user as one line."""


class SettingsError(CitymailError):
    """A setting is invalid; the message says how to fix it."""


class NotFound(CitymailError):
    """The named object does not exist."""


class InvalidInput(CitymailError):
    """A value given by a user cannot be used."""


class StorageError(CitymailError):
    """The database could not store or read what was asked."""
