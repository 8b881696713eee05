"""Errors that reach the user as one line and a defined exit status."""


class GenlabError(Exception):
    """Base of every error genlab reports to a user without a traceback."""

    exit_code = 1


class UsageError(GenlabError):
    """A bad command line, setting or request (exit status 2)."""

    exit_code = 2


class DataError(GenlabError):
    """Missing, corrupt or unsuitable data (exit status 1)."""

    exit_code = 1


class RunError(GenlabError):
    """A failure while training, sampling or evaluating (exit status 1)."""

    exit_code = 1
