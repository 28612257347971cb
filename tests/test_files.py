"""loop/files.py: the one atomic write every file goes through (workbook, prompt, versions, markers)
and the durable JSON-lines append."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loop import files


def temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    target = tmp_path / "prompt.md"
    target.write_text("old")
    for mode in (0o644, 0o664, 0o600, 0o640):
        os.chmod(target, mode)
        files.write_text(target, f"new {mode}")
        assert (os.stat(target).st_mode & 0o777, target.read_text()) == (mode, f"new {mode}")


def test_a_new_file_follows_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        files.write_text(tmp_path / "a.md", "x")
        os.umask(0o002)
        files.write_text(tmp_path / "b.md", "x")
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "a.md").st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "b.md").st_mode & 0o777 == 0o664


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "loop.xlsx"
    target.write_bytes(b"original")
    with pytest.raises(OSError):
        with files.atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"original"
    assert temporaries(tmp_path) == []


def test_a_write_that_fails_verification_leaves_the_target(tmp_path):
    target = tmp_path / "loop.xlsx"
    target.write_bytes(b"original")

    def refuse(path):
        raise ValueError(f"{path.name} does not open")

    with pytest.raises(ValueError, match="does not open"):
        files.write_bytes(target, b"garbage", verify=refuse)
    assert target.read_bytes() == b"original"
    assert temporaries(tmp_path) == []


def test_the_file_and_its_folder_are_flushed_to_disk(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    files.write_text(tmp_path / "v2.md", "text")
    assert any(path.endswith(".tmp") for path in synced)  # the new content, before the rename
    assert str(tmp_path) in synced  # the rename itself


def test_temporary_files_of_a_killed_run_are_removed_by_the_next_write(tmp_path):
    script = ("import os, sys\nfrom loop import files\n"
              "with files.atomic_path(sys.argv[1]) as t:\n    t.write_bytes(b'half')\n    os._exit(9)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "loop.xlsx")])
    assert killed.returncode == 9 and len(temporaries(tmp_path)) == 1
    files.write_text(tmp_path / "other.md", "x")  # any write in the folder
    assert temporaries(tmp_path) == []


def test_a_temporary_file_of_a_live_writer_is_left_alone(tmp_path):
    with files.atomic_path(tmp_path / "loop.xlsx") as temporary:
        temporary.write_bytes(b"in progress")
        files.remove_stale_temporaries(tmp_path)
        assert temporary.exists()


def test_json_lines_survive_a_line_cut_short(tmp_path):
    path = tmp_path / "traces.jsonl"
    files.append_json_lines(path, [{"a": 1}])
    with open(path, "ab") as stream:
        stream.write(b'{"b": 2, "cut')  # a crash mid-line
    records, end = files.read_json_lines(path)
    assert records == [{"a": 1}] and end == len(b'{"a": 1}\n')
    files.append_json_lines(path, [{"c": 3}])
    assert files.read_json_lines(path)[0] == [{"a": 1}, {"c": 3}]
