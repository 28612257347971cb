"""loop/schedule.py: the weekly run as a GitHub workflow, a crontab line and systemd user units."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from loop.errors import UsageError
from loop.measure.schedule import WORKFLOW, Schedule, crontab_line, github_workflow, systemd_units, write_workflow

SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")


def workflow(plan: Schedule) -> dict:
    data = yaml.safe_load(github_workflow(plan))
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def steps(data: dict) -> list[dict]:
    (job,) = data["jobs"].values()
    return job["steps"]


def places(node, path=()):
    """(path, text) for every string in the workflow, path being the keys and indexes above it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from places(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from places(value, path + (index,))
    elif isinstance(node, str):
        yield path, node


def check_cron(expression: str) -> list[int]:
    fields = expression.split()
    assert len(fields) == 5
    assert fields[2:4] == ["*", "*"]
    numbers = [int(fields[0]), int(fields[1]), int(fields[4])]
    assert 0 <= numbers[0] <= 59 and 0 <= numbers[1] <= 23 and 0 <= numbers[2] <= 6
    return numbers


def test_the_workflow_runs_weekly_and_by_hand_off_the_top_of_the_hour():
    data = workflow(Schedule())
    assert data["name"] == "loop weekly"
    assert "workflow_dispatch" in data["on"]
    (entry,) = data["on"]["schedule"]
    minute, hour, day = check_cron(entry["cron"])
    assert (minute % 2, hour, day) == (1, 6, 1)  # an odd minute, 06 UTC, Monday
    assert data["permissions"] == {"contents": "read"}
    assert data["concurrency"]["group"] and data["concurrency"]["cancel-in-progress"] is False
    (job,) = data["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] == 60


def test_the_cron_follows_the_schedule():
    for weekday, cron_day in [(0, 1), (5, 6), ("sunday", 0), ("Wed", 3)]:
        data = workflow(Schedule(weekday=weekday, hour=23, minute=59))
        assert check_cron(data["on"]["schedule"][0]["cron"]) == [59, 23, cron_day]


def test_the_steps_install_then_improve_then_apply_then_report():
    runs = [step.get("run", "") for step in steps(workflow(Schedule(since="3w", include_judge=True)))]
    uses = [step["uses"] for step in steps(workflow(Schedule())) if "uses" in step]
    assert uses == ["actions/checkout@v4", "actions/setup-python@v5"]
    assert steps(workflow(Schedule()))[1]["with"]["python-version"] == "3.11"
    install = runs.index("pip install .")
    improve = next(i for i, run in enumerate(runs) if run.startswith("loop improve"))
    report = runs.index("loop report")
    assert install < improve < runs.index("loop apply") < report
    canary = [step.get("run", "") for step in steps(workflow(Schedule(canary="10%")))]
    assert canary.index("loop apply --canary 10%") == improve + 1 and "10% of tickets" in github_workflow(
        Schedule(canary="10%"))
    assert shlex.split(runs[improve]) == ["loop", "improve", "--since", "3w", "--include-judge"]
    plain = [step.get("run", "") for step in steps(workflow(Schedule()))]
    assert "loop improve --since 14d" in plain and not any("--include-judge" in run for run in plain)


@pytest.mark.parametrize("notify", [False, True])
def test_secrets_reach_the_shell_only_through_env(notify):
    text = github_workflow(Schedule(notify=notify))
    data = workflow(Schedule(notify=notify))
    used = {}
    for path, value in places(data):
        if path[-1] == "run":
            assert "${{" not in value, value
        for name in SECRET.findall(value):
            assert len(path) >= 2 and path[-2] == "env", path
            used[name] = path
    assert {"OPENAI_API_KEY", "LOOP_SHEET", "GOOGLE_SERVICE_ACCOUNT_JSON", "OPENAI_BASE_URL"} <= set(used)
    assert ("LOOP_NOTIFY_URL" in used) is notify
    assert ("LOOP_NOTIFY_URL" in text) is notify
    (job,) = data["jobs"].values()
    assert job["env"]["LOOP_MODEL"] == "${{ vars.LOOP_MODEL }}"
    assert len(SECRET.findall(text)) == len(SECRET.findall("\n".join(v for _, v in places(data))))  # none in comments


def test_the_google_key_becomes_a_credentials_file():
    (step,) = [step for step in steps(workflow(Schedule())) if "GOOGLE_SERVICE_ACCOUNT_JSON" in step.get("env", {})]
    assert '> "$RUNNER_TEMP/google.json"' in step["run"]
    assert 'GOOGLE_APPLICATION_CREDENTIALS=$RUNNER_TEMP/google.json" >> "$GITHUB_ENV"' in step["run"]


def test_the_workflow_says_what_it_needs_and_the_60_day_rule():
    text = github_workflow(Schedule())
    head = text.split("\nname:")[0]
    assert all(line.startswith("#") for line in head.splitlines())
    assert "60 days" in head and "workflow_dispatch" in head and "Actions tab" in head
    for name in ("OPENAI_API_KEY", "LOOP_SHEET", "GOOGLE_SERVICE_ACCOUNT_JSON"):
        assert name in head


def test_write_workflow_creates_folders_and_refuses_to_overwrite(tmp_path):
    target = write_workflow(Schedule(), tmp_path)
    assert target == tmp_path / WORKFLOW == tmp_path / ".github/workflows/loop-weekly.yml"
    assert target.read_text() == github_workflow(Schedule())
    target.write_bytes(b"# the team's own edits\n")
    with pytest.raises(UsageError, match="--force") as refused:
        write_workflow(Schedule(hour=9), tmp_path)
    assert "\n" not in str(refused.value)
    assert target.read_bytes() == b"# the team's own edits\n"
    assert write_workflow(Schedule(hour=9), tmp_path, force=True) == target
    assert target.read_text() == github_workflow(Schedule(hour=9))
    assert sorted(p.name for p in target.parent.iterdir()) == ["loop-weekly.yml"]  # no temporary left


AWKWARD = "/srv/my team's 100% loop"


def test_the_crontab_line_quotes_paths_and_escapes_percent():
    comment, line = crontab_line(Schedule(), workdir=AWKWARD, loop=AWKWARD + "/.venv/bin/loop").split("\n")
    assert comment.startswith("#") and "local time" in comment
    fields = line.split(" ", 5)
    assert check_cron(" ".join(fields[:5])) == [17, 6, 1]
    command = fields[5]
    assert "%" not in command.replace("\\%", "")
    words = shlex.split(command.replace("\\%", "%"))
    assert AWKWARD in words[1:3] and words.count(AWKWARD + "/.venv/bin/loop") == 3
    assert words[-3:] == [">>", AWKWARD + "/loop-weekly.log", "2>&1"]


@pytest.mark.parametrize("canary", [None, "10%"])
def test_the_crontab_command_improves_applies_then_reports_and_stops_on_failure(tmp_path, canary):
    """Run the command as cron would hand it to sh, with a stand-in `loop` that records its arguments."""
    workdir = tmp_path / "a 100% folder"
    (workdir / "bin").mkdir(parents=True)
    (tmp_path / ".config/loop").mkdir(parents=True)
    (tmp_path / ".config/loop/env").write_text("LOOP_SHEET=https://example.com/sheet\n")
    loop = workdir / "bin/loop"
    loop.write_text('#!/bin/sh\necho "$PWD|$LOOP_SHEET|$*" >> calls\n[ "$1" != "$FAIL" ]\n')
    loop.chmod(0o755)
    line = crontab_line(Schedule(since="2w", canary=canary), workdir=str(workdir), loop=str(loop)).split("\n")[1]
    command = line.split(" ", 5)[5].replace("\\%", "%")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(["/bin/sh", "-c", command], env=env, check=True)
    apply = "apply --canary 10%" if canary else "apply"
    assert (workdir / "calls").read_text().splitlines() == [
        f"{workdir}|https://example.com/sheet|improve --since 2w", f"{workdir}|https://example.com/sheet|{apply}",
        f"{workdir}|https://example.com/sheet|report"]
    for failing, ran in (("improve", 1), ("apply", 2)):
        (workdir / "calls").unlink()
        assert subprocess.run(["/bin/sh", "-c", command], env={**env, "FAIL": failing}).returncode != 0
        assert (workdir / "calls").read_text().count("\n") == ran  # nothing after the step that failed


def test_relative_or_multiline_paths_are_refused():
    for workdir, loop in [("here", "/x/loop"), ("/x", "loop"), ("/x\n* * * * * evil", "/x/loop")]:
        with pytest.raises(UsageError):
            crontab_line(Schedule(), workdir=workdir, loop=loop)
        with pytest.raises(UsageError):
            systemd_units(Schedule(), workdir=workdir, loop=loop)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section → key → values in order: a unit may repeat a key (ExecStart= in a oneshot service)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, value = line.split("=", 1)
            current.setdefault(key, []).append(value)
    return sections


def test_the_systemd_units():
    service, timer = systemd_units(Schedule(weekday="fri", hour=23, minute=5, include_judge=True),
                                   workdir="/home/ann/support bot", loop="/home/ann/support bot/.venv/bin/loop")
    unit = parse_unit(service)["Service"]
    assert unit["Type"] == ["oneshot"] and unit["WorkingDirectory"] == ["/home/ann/support bot"]
    assert unit["EnvironmentFile"] == ["-%h/.config/loop/env"]
    assert unit["TimeoutStartSec"] == ["1h"]  # a oneshot service has no start timeout of its own
    assert [shlex.split(line) for line in unit["ExecStart"]] == [
        ["/home/ann/support bot/.venv/bin/loop", "improve", "--since", "14d", "--include-judge"],
        ["/home/ann/support bot/.venv/bin/loop", "apply"],
        ["/home/ann/support bot/.venv/bin/loop", "report"]]
    with_canary, _ = systemd_units(Schedule(canary="10"), workdir="/w", loop="/w/loop")
    assert parse_unit(with_canary)["Service"]["ExecStart"][1] == '"/w/loop" apply --canary 10%%'  # % doubled
    parsed = parse_unit(timer)
    assert parsed["Timer"] == {"OnCalendar": ["Fri *-*-* 23:05:00 UTC"], "Persistent": ["true"]}
    assert parsed["Install"] == {"WantedBy": ["timers.target"]}
    assert "~/.config/systemd/user/loop-weekly.service" in service
    assert "systemctl --user enable --now loop-weekly.timer" in timer and "loginctl enable-linger" in timer


def test_systemd_doubles_percent_and_dollar():
    service, _ = systemd_units(Schedule(), workdir="/a/100%", loop='/a/100%/$x"y/loop')
    unit = parse_unit(service)["Service"]
    assert unit["WorkingDirectory"] == ["/a/100%%"]
    assert unit["ExecStart"][2] == '"/a/100%%/$$x\\"y/loop" report'


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_units(tmp_path):
    workdir = tmp_path / "my 100% folder"
    (workdir / ".venv/bin").mkdir(parents=True)
    loop = workdir / ".venv/bin/loop"
    loop.write_text("#!/bin/sh\n")
    loop.chmod(0o755)
    service, timer = systemd_units(Schedule(), workdir=str(workdir), loop=str(loop))
    (tmp_path / "loop-weekly.service").write_text(service)
    (tmp_path / "loop-weekly.timer").write_text(timer)
    names = [str(tmp_path / "loop-weekly.service"), str(tmp_path / "loop-weekly.timer")]
    try:
        done = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"systemd-analyze cannot run here: {error}")
    if "Failed to initialize manager" in done.stderr or "Failed to lookup" in done.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert "loop-weekly" not in done.stderr, done.stderr
    loop.unlink()  # and it does look: a missing program is reported
    done = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "not executable" in done.stderr


@pytest.mark.parametrize("fields, message", [
    ({"hour": 24}, "hour"), ({"hour": -1}, "hour"), ({"minute": 60}, "minute"), ({"hour": True}, "hour"),
    ({"minute": "17"}, "minute"), ({"weekday": 7}, "weekday"), ({"weekday": "funday"}, "weekday"),
    ({"since": "2026-01-01"}, "duration"), ({"since": "14"}, "duration"), ({"since": "0d"}, "duration"),
    ({"since": "14d; rm -rf ~"}, "duration"), ({"canary": "0%"}, "canary"), ({"canary": "100%"}, "canary"),
    ({"canary": "10%; rm -rf ~"}, "canary"), ({"canary": "all"}, "canary"),
])
def test_schedule_validation(fields, message):
    with pytest.raises(UsageError, match=message):
        Schedule(**fields)


def test_schedule_defaults_and_normalising():
    plan = Schedule()
    assert (plan.weekday, plan.hour, plan.minute, plan.since, plan.include_judge, plan.notify) == (
        0, 6, 17, "14d", False, False)
    assert plan.minute % 2 and plan.minute not in (0, 30)
    assert Schedule(weekday="Sunday", since=" 2W ") == Schedule(weekday=6, since="2w")
    with pytest.raises(AttributeError):
        plan.hour = 7  # frozen


def test_loop_schedule_writes_the_workflow_and_prints_the_others(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    result = cli("schedule", "--github", "--day", "fri", "--hour", "7", "--minute", "41", "--include-judge")
    assert "60 days" in result.output
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "loop-weekly.yml").read_text())
    triggers = workflow[True]  # PyYAML reads the key `on` as a boolean
    assert triggers["schedule"] == [{"cron": "41 7 * * 5"}] and "workflow_dispatch" in triggers
    runs = [step["run"] for step in workflow["jobs"]["loop"]["steps"] if "run" in step]
    assert runs[-3:] == ["loop improve --since 14d --include-judge", "loop apply", "loop report"]
    cli("schedule", "--github", code=2)
    cli("schedule", "--github", "--force")
    assert cli("schedule", "--cron").output.splitlines()[-1].startswith("17 6 * * 1 ")
    assert "Persistent=true" in cli("schedule", "--systemd").output
    assert " apply --canary 25% " in cli("schedule", "--cron", "--canary", "25 %").output.replace("\\%", "%")
    assert "--canary" in cli("schedule", "--cron", "--canary", "all", code=2).output
    assert "--github, --cron or --systemd" in cli("schedule", code=2).output
    assert "weekday" in cli("schedule", "--cron", "--day", "someday", code=2).output.lower()
