"""Typed errors, caught once at the CLI edge and printed as one or two lines."""


class LoopError(Exception):
    """Base class: the message names the problem and the fix."""

    exit_code = 1


class UsageError(LoopError):
    """Bad configuration or input: a missing column, no such file, no credentials."""

    exit_code = 2


class RunFailure(LoopError):
    """The model or the sheet stayed unreachable after retries; nothing was written."""

    exit_code = 1
