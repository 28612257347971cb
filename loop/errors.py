"""Typed errors, caught once at the CLI edge and printed as one or two lines."""

import os


class LoopError(Exception):
    """Base class: the message names the problem and the fix.

    The message is scrubbed when the error is made: a URL's password, the API key and the webhook
    URL become ***, so neither the one-line error nor a --debug traceback can show them."""

    exit_code = 1

    def __init__(self, *args):
        from loop.redact import scrub

        secrets = tuple(os.environ.get(name, "") for name in ("OPENAI_API_KEY", "LOOP_NOTIFY_URL"))
        super().__init__(*(scrub(arg, secrets) if isinstance(arg, str) else arg for arg in args))


class UsageError(LoopError):
    """Bad configuration or input: a missing column, no such file, no credentials."""

    exit_code = 2


class StoreUnusable(UsageError):
    """The store refuses this configuration (credentials, no such database, a newer schema, read-only,
    not a database): waiting does not help, so `loop sync --watch` ends on it too."""


class WorkbookBusy(UsageError):
    """The workbook cannot take a write right now (open in Excel, locked by another writer); later it can."""


class WrongWorkbook(UsageError):
    """The workbook at a draft's path is not the one the store delivered to before (its loop.workbook id
    differs): another project's store was moved beside it, or another workbook took its place."""

    def __init__(self, path, found: str, expected: str, store: str = "this store"):
        super().__init__(f"{path} is another workbook than the one the drafts in {store} were logged for (its "
                         f"loop.workbook id is {found}, the store's {expected}): put the store back beside its own "
                         "workbook, or give this one a store of its own (--store or LOOP_STORE). Nothing was written.")
        self.found, self.expected = found, expected


class RunFailure(LoopError):
    """The model or the sheet stayed unreachable after retries; nothing was written."""

    exit_code = 1


class TitleTaken(LoopError):
    """A tab to be added has a title another writer took meanwhile; pick another and write again."""

    def __init__(self, title: str):
        super().__init__(f"A tab named {title!r} already exists.")
        self.title = title


class LeaseLost(WorkbookBusy):
    """Another deliverer took the workbook's delivery lease (this one's lapsed): this one writes nothing."""


class DeliveryHeld(WorkbookBusy):
    """Drafts of a write whose outcome is not known yet wait: they, and every draft after them, are
    written only once that write can no longer land and the sheet says which of them it has."""


class UnconfirmedWrite(RunFailure):
    """A write whose answer was lost (a timeout, a dropped connection after it was sent): the sheet may
    or may not have applied it, so it is never sent again without asking the sheet first."""
