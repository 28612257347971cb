"""Every file `loop` writes goes through here: one atomic write with one set of guarantees, and
JSON-lines files that are appended to durably and read back even after a crash cut a line short.

An atomic write puts the new bytes in a temporary file in the target's own folder, flushes it to
disk, gives it the target's mode (a new file follows the umask), checks it when asked, renames it
over the target and flushes the folder, so a reader sees the old file or the new one, never a mix.
A temporary file left by a killed run is removed by the next write in that folder.

A target that is a symbolic link (a prompt owned by the agent's repository, a shared workbook) is
written through: the link is resolved first, the temporary file is made in the real file's folder
and renamed over the real file, so the link stays and points at the new content.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_TEMPORARY = re.compile(r"^\..+\.loop-(\d+)-[0-9a-f]{8}\.tmp$")
# A temporary file this old is left over even if its process id was reused by another program.
STALE_AFTER_SECONDS = 24 * 3600


@contextmanager
def atomic_path(target: str | Path, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """A temporary path to write the new content to; on leaving the block it replaces `target`.

    `verify(temporary)` may raise to refuse what was written: the target is then left untouched.
    On any failure the temporary file is removed. A symbolic link is written through (see above)."""
    target = Path(os.path.realpath(target)) if os.path.islink(target) else Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    remove_stale_temporaries(folder)
    temporary = folder / f".{target.name}.loop-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    # 0o666 lets the umask decide a new file's mode, as a plain open() would.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        _fsync_file(temporary)
        if verify:
            verify(temporary)
        try:
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def write_bytes(target: str | Path, data: bytes, verify: Callable[[Path], None] | None = None) -> None:
    with atomic_path(target, verify) as temporary:
        temporary.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files of runs that were killed before they could clean up."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match:
            continue
        try:
            old = time.time() - entry.stat().st_mtime > STALE_AFTER_SECONDS
            if old or not _alive(int(match.group(1))):
                os.unlink(entry.path)
        except FileNotFoundError:
            pass  # its owner finished, or another run cleaned it first


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some systems cannot open a folder, and then there is nothing to do."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def append_json_lines(path: Path, records: list[dict]) -> int:
    """Append one JSON line per record and flush them to disk; returns the file's new size.

    A line cut short by a crash is ended first, so the new records stand on lines of their own.
    Call with the file's lock held."""
    data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
    with open(path, "a+b") as stream:
        stream.seek(0, os.SEEK_END)
        if stream.tell():
            stream.seek(-1, os.SEEK_END)
            if stream.read(1) != b"\n":
                data = b"\n" + data
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
        return stream.tell()


def read_json_lines(path: Path, start: int = 0) -> tuple[list[dict], int]:
    """The records of every whole line from byte `start`, and the offset just past the last whole line.

    A last line without its newline (a write still under way, or cut by a crash) is not read."""
    try:
        with open(path, "rb") as stream:
            stream.seek(start)
            data = stream.read()
    except FileNotFoundError:
        return [], start
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash, ended later by the next append
        if isinstance(record, dict):
            records.append(record)
    return records, start + end
