"""Typed errors, caught once at the CLI edge and printed as one or two lines."""


class LoopError(Exception):
    """Base class: the message names the problem and the fix."""

    exit_code = 1


class UsageError(LoopError):
    """Bad configuration or input: a missing column, no such file, no credentials."""

    exit_code = 2


class WorkbookBusy(UsageError):
    """The workbook cannot take a write right now (open in Excel, locked by another writer); later it can."""


class RunFailure(LoopError):
    """The model or the sheet stayed unreachable after retries; nothing was written."""

    exit_code = 1


class TitleTaken(LoopError):
    """A tab to be added has a title another writer took meanwhile; pick another and write again."""

    def __init__(self, title: str):
        super().__init__(f"A tab named {title!r} already exists.")
        self.title = title
