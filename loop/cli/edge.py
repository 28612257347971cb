"""What every `loop` command shares: its options, resolved once into a Workspace, and the one edge
where errors become one or two lines; warnings and progress from the library reach stderr through
one logging handler."""

from __future__ import annotations

import functools
import logging
import re
import sys
from contextlib import ExitStack, contextmanager

import click

from loop import config
from loop.cell_values import shown
from loop.errors import LoopError

SHOW_SKIPPED = 20
# JSON escapes C0 controls itself; DEL and C1 (CSI is U+009B) are escaped the same way, losslessly
C1_CONTROLS = re.compile(r"[\x7f-\x9f]")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 tab`, `2 tabs`."""
    return f"{count} {word if count == 1 else many or word + 's'}"


class _EchoHandler(logging.Handler):
    """Warnings and progress from the library, on stderr: one place, so no command swallows them."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        from loop.redact import scrub

        click.echo(prefix + shown(scrub(record.getMessage())), err=True)


def _install_logging(debug: bool) -> None:
    logger = logging.getLogger("loop")
    if not any(isinstance(handler, _EchoHandler) for handler in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


def run_at_edge(command, debug: bool, *args, **kwargs):
    """Run `command`; a LoopError or an OSError becomes one line and its exit code (a traceback with --debug)."""
    from filelock import Timeout

    from loop.redact import scrub

    _install_logging(debug)
    try:
        return command(*args, **kwargs)
    except BrokenPipeError:  # `loop status | head -1`: the reader is gone, so end quietly (click exits 1)
        raise
    except LoopError as error:  # its message was scrubbed of URL passwords when it was made (errors.py)
        if debug:
            raise
        click.echo(f"error: {shown(str(error))}", err=True)
        sys.exit(error.exit_code)
    except Timeout as error:
        if debug:
            raise
        click.echo(f"error: another loop command holds {error.lock_file}; wait for it and run again.", err=True)
        sys.exit(1)
    except OSError as error:  # disk full, permission denied: nothing was half-written
        if debug:
            raise
        click.echo(shown(scrub(f"error: {error.strerror or error} ({error.filename or 'a file'}); fix it and run again.")),
                   err=True)
        sys.exit(1)


@contextmanager
def progress(label: str):
    """(on_start, on_done) for a long step: a progress bar on stderr, drawn once the total is known."""
    with ExitStack() as stack:
        bars = []

        def start(total: int) -> None:
            bars.append(stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr)))

        yield start, lambda: bars[0].update(1)


def common(command):
    """Options every command shares, resolved once into a Workspace."""

    @click.option("--sheet", help="A local .xlsx path, or a Google Sheets URL or key. [env LOOP_SHEET; default loop.xlsx]")
    @click.option("--prompt", help="The managed prompt file. [env LOOP_PROMPT; default prompts/support_agent.md]")
    @click.option("--credentials", type=click.Path(dir_okay=False),
                  help="Google service-account key file. [env GOOGLE_APPLICATION_CREDENTIALS]")
    @click.option("--store", metavar="URL", help="Where drafts are kept: sqlite:///path, a file path or "
                  "postgresql://… [env LOOP_STORE; default loop.db beside the workbook]")
    @click.option("--debug", is_flag=True, help="Show a traceback on errors.")
    @functools.wraps(command)
    def wrapper(sheet, prompt, credentials, store, debug, **options):
        def run():
            settings = config.resolve(
                sheet=sheet, prompt=prompt, credentials=credentials, model=options.pop("model", None),
                max_input_tokens=options.pop("max_input_tokens", None),
                max_edit_chars=options.pop("max_edit_chars", None),
                max_edit_share=options.pop("max_edit_share", None),
                check_budget=options.pop("check_budget", None),
                notify_url=options.pop("notify", None), store=store,
            )
            from loop.workspace import Workspace

            return command(workspace=Workspace(settings), **options)

        return run_at_edge(run, debug)

    return wrapper
