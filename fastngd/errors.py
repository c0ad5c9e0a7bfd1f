"""Errors a user can fix, reported by the command line as one line without a traceback.

Library code raises these (or plain ``ValueError``/``TypeError`` for programming errors);
``fastngd.cli.main`` prints ``fastngd <command>: error: <message>`` and exits with
:attr:`UserError.exit_code`. Every message names the file, flag or field at fault and, where
there is one, what to do about it.
"""
from __future__ import annotations

__all__ = ["InputError", "UsageError", "UserError"]


class UserError(Exception):
    """Base class of the errors caused by the user's input rather than by a bug."""

    #: process exit status the command line uses for this error.
    exit_code: int = 1


class UsageError(UserError, ValueError):
    """A bad command line or argument combination (a flag that does not apply, a bad value):
    exit status 2, as ``argparse`` uses for usage errors."""

    exit_code = 2


class InputError(UserError, ValueError):
    """Input files or folders that are missing, unreadable, malformed or inconsistent (data
    rows with wrong field types, non-UTF-8 bytes, corrupted weights or checkpoints): exit
    status 1."""

    exit_code = 1
