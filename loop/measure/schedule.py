"""`loop schedule`: run the loop once a week on its own, as a GitHub Actions workflow, a crontab
line or a pair of systemd user units.

Each run is a chain, each step only if the one before succeeded, so a failure shows as a failed job:
`loop improve --since <window>` proposes edits; `loop apply` (`--canary SHARE` when asked) acts on the
Rollout tab's ticks and applies the edits reviewers ticked since the last run (the new Edits tab has no
ticks yet), or nothing in a week with none ticked; `loop report` refreshes the Dashboard and its
guardrail stops a canary the figures show worse. A week with no newly reviewed failure is fine
(improve writes nothing).
The texts are written out by hand to keep their comments; every value put in them is checked or
quoted for its reader first, so none can turn into shell or YAML of its own.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from loop import files
from loop.cell_values import window_start
from loop.errors import UsageError

WORKFLOW = Path(".github/workflows/loop-weekly.yml")
# Read by the systemd service and the crontab line alike: OPENAI_API_KEY=…, LOOP_SHEET=… one a line.
ENV_FILE = ".config/loop/env"
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NAMES = {name: day for day, full in enumerate(_FULL) for name in (full, full[:3])}


@dataclass(frozen=True)
class Schedule:
    """When the weekly run starts and what it passes on. `weekday` is 0 for Monday (as in
    `datetime.weekday()`) or a day's name; a name is stored as its number. The default minute is
    off the top and the half of the hour, when GitHub's scheduler is busiest and delays runs."""

    weekday: int | str = 0
    hour: int = 6  # UTC on GitHub and in the systemd timer; the machine's local time in cron
    minute: int = 17
    since: str = "14d"  # the review window; a rolling duration, as a fixed date would grow every week
    include_judge: bool = False
    notify: bool = False  # pass LOOP_NOTIFY_URL to the workflow, for the digest
    canary: str | None = None  # apply ticked edits as a canary on this share of tickets ("10%"); None: for everyone

    def __post_init__(self):
        day = _NAMES.get(self.weekday.strip().lower(), -1) if isinstance(self.weekday, str) else self.weekday
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise UsageError(f"No such weekday {self.weekday!r}; use mon, tue, wed, thu, fri, sat or sun.")
        object.__setattr__(self, "weekday", day)
        for name, top in (("hour", 23), ("minute", 59)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise UsageError(f"The {name} must be a whole number from 0 to {top}, not {value!r}.")
        since = str(self.since).strip().lower()
        if not re.fullmatch(r"\d+(\.\d+)?[hdw]", since) or not float(since[:-1]):
            raise UsageError(f"--since {self.since!r} must be a duration such as 14d, 2w or 36h for a weekly run.")
        try:  # refused now, as `loop improve --since` would refuse it in every scheduled run
            window_start(since)
        except UsageError:
            raise UsageError(f"--since {self.since!r} reaches back before the year 1900; a weekly run needs a "
                             "shorter duration, such as 14d, 2w or 36h.") from None
        object.__setattr__(self, "since", since)
        if self.canary is not None:
            object.__setattr__(self, "canary", _share(self.canary))

    def when(self) -> str:
        return f"every {DAYS[self.weekday]} at {self.hour:02d}:{self.minute:02d}"

    def cron(self) -> str:
        """Five cron fields; cron counts the week from Sunday = 0."""
        return f"{self.minute} {self.hour} * * {(self.weekday + 1) % 7}"

    def improve_args(self) -> list[str]:
        return ["improve", "--since", self.since] + (["--include-judge"] if self.include_judge else [])

    def apply_args(self) -> list[str]:
        return ["apply"] + (["--canary", self.canary] if self.canary else [])

    def steps(self) -> list[list[str]]:
        """The chain's commands, in order: each runs only if the one before succeeded."""
        return [self.improve_args(), self.apply_args(), ["report"]]


def _share(text: object) -> str:
    """A canary's share as `loop apply --canary` reads it (10%, or 10), checked now, as every scheduled
    run would refuse it."""
    from loop.ship.canary import parse_share, percent

    return percent(parse_share(str(text)))


def github_workflow(plan: Schedule) -> str:
    """The workflow's text. Secrets reach the shell only through `env:`: pasted into a `run:`
    script, a value could become part of the script."""
    notify = "      LOOP_NOTIFY_URL: ${{ secrets.LOOP_NOTIFY_URL }}\n" if plan.notify else ""
    notify_note = "#   LOOP_NOTIFY_URL              the webhook the digest is posted to\n" if plan.notify else ""
    applied = f"as a canary on {plan.canary} of tickets" if plan.canary else "for every ticket"
    return f"""\
# loop weekly: {plan.when()} UTC. `loop improve --since {plan.since}` proposes prompt edits from
# the failures reviewed in the window (nothing is written when none is new); `{" ".join(["loop"] + plan.apply_args())}`
# acts on the Rollout tab's ticks and applies the edits reviewers ticked since the last run,
# {applied} (nothing in a week with none ticked); `loop report` updates the Dashboard
# and stops a running canary its figures show worse. With LOOP_STORE on PostgreSQL the agents
# serve the new version from the store within a minute. Written by `loop schedule`.
# `pip install .` must install loop: run it in this project's repository, or in one that lists
# loop as a dependency.
# Secrets (Settings > Secrets and variables > Actions):
#   OPENAI_API_KEY               the model's API key
#   OPENAI_BASE_URL              optional: another OpenAI-compatible server
#   LOOP_SHEET                   the Google Sheet's URL (an .xlsx on the runner is thrown away)
#   GOOGLE_SERVICE_ACCOUNT_JSON  a service-account key; share the sheet with its email (Editor)
#   LOOP_STORE                   the PostgreSQL store your agent hosts log to (postgresql://…):
#                                without it the runner starts an empty store each week, and fields
#                                the sheet cut at its cell limit cannot be made whole
{notify_note}# Variable (optional): LOOP_MODEL.
# GitHub disables scheduled workflows in a repository with no activity for 60 days: re-enable
# this one from the Actions tab, or run it by hand there (Run workflow: workflow_dispatch).
name: loop weekly
on:
  schedule:
    - cron: "{plan.cron()}"
  workflow_dispatch:
permissions:
  contents: read
concurrency:
  group: loop-weekly
  cancel-in-progress: false
jobs:
  loop:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    env:
      OPENAI_API_KEY: ${{{{ secrets.OPENAI_API_KEY }}}}
      LOOP_SHEET: ${{{{ secrets.LOOP_SHEET }}}}
      LOOP_MODEL: ${{{{ vars.LOOP_MODEL }}}}
      LOOP_STORE: ${{{{ secrets.LOOP_STORE }}}}
{notify}    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install loop
        run: pip install .
      - name: Google credentials and settings
        env:
          GOOGLE_SERVICE_ACCOUNT_JSON: ${{{{ secrets.GOOGLE_SERVICE_ACCOUNT_JSON }}}}
          BASE_URL: ${{{{ secrets.OPENAI_BASE_URL }}}}
        run: |
          if [ -z "$LOOP_SHEET" ] || [ -z "$GOOGLE_SERVICE_ACCOUNT_JSON" ]; then
            echo "::error::Add the LOOP_SHEET and GOOGLE_SERVICE_ACCOUNT_JSON secrets."; exit 1
          fi
          umask 077
          printf '%s' "$GOOGLE_SERVICE_ACCOUNT_JSON" > "$RUNNER_TEMP/google.json"
          echo "GOOGLE_APPLICATION_CREDENTIALS=$RUNNER_TEMP/google.json" >> "$GITHUB_ENV"
          # An empty OPENAI_BASE_URL would replace the default server: set it only when given.
          if [ -n "$BASE_URL" ]; then echo "OPENAI_BASE_URL=$BASE_URL" >> "$GITHUB_ENV"; fi
      - name: Improve
        run: loop {" ".join(plan.improve_args())}
      - name: Apply what was ticked
        run: loop {" ".join(plan.apply_args())}
      - name: Report
        run: loop report
"""


def write_workflow(plan: Schedule, root: Path, force: bool = False) -> Path:
    """Write the workflow under `root` atomically; an existing one is replaced only with `force`,
    as it may hold changes of the team's own."""
    target = Path(root) / WORKFLOW
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(target, github_workflow(plan))
    return target


def _absolute(path: str, what: str) -> str:
    """Cron and systemd start in another folder with another PATH: only an absolute path is sure."""
    path = str(path)
    if not Path(path).is_absolute() or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise UsageError(f"The {what} must be an absolute path on one line, not {path!r}.")
    return path


def crontab_line(plan: Schedule, workdir: str, loop: str) -> str:
    """A comment and one crontab line. Cron starts with an almost empty environment, so the line
    reads ~/.config/loop/env when there is one; a `%` would end cron's command, so it is escaped."""
    workdir, loop = _absolute(workdir, "working folder"), _absolute(loop, "loop program")
    env = f'"$HOME/{ENV_FILE}"'
    program = shlex.quote(loop)
    command = (f"(cd {shlex.quote(workdir)} && if [ -r {env} ]; then set -a; . {env}; set +a; fi"
               f" && {' && '.join(f'{program} {shlex.join(step)}' for step in plan.steps())})"
               f" >> {shlex.quote(str(Path(workdir) / 'loop-weekly.log'))} 2>&1")
    return (f"# loop weekly: improve, apply what was ticked, then report, {plan.when()} (the machine's local time); "
            f"settings in ~/{ENV_FILE}\n{plan.cron()} {command.replace('%', chr(92) + '%')}")


def _systemd_word(word: str) -> str:
    """One ExecStart= word: double quotes with C escapes; `%` and `$` doubled, as systemd
    expands specifiers and variables in command lines."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_units(plan: Schedule, workdir: str, loop: str) -> tuple[str, str]:
    """The service and timer texts. A oneshot service runs its ExecStart= lines in order and stops
    at the first that fails, so each step of the chain runs only after the one before succeeded."""
    workdir, loop = _absolute(workdir, "working folder"), _absolute(loop, "loop program")
    program = _systemd_word(loop)
    where = "~/.config/systemd/user/loop-weekly"
    service = f"""\
# {where}.service: loop weekly, started by loop-weekly.timer.
# Put OPENAI_API_KEY=..., LOOP_SHEET=... (and any other LOOP_ setting) one a line in ~/{ENV_FILE}.
[Unit]
Description=loop weekly: improve the prompt from reviews, apply what was ticked, then report

[Service]
Type=oneshot
TimeoutStartSec=1h
WorkingDirectory={workdir.replace("%", "%%")}
EnvironmentFile=-%h/{ENV_FILE}
{"".join(f"ExecStart={program} {' '.join(step).replace('%', '%%')}" + chr(10) for step in plan.steps())}"""
    timer = f"""\
# {where}.timer: starts loop-weekly.service {plan.when()} UTC.
# Enable: systemctl --user daemon-reload && systemctl --user enable --now loop-weekly.timer
# To run while you are logged out: loginctl enable-linger "$USER"
[Unit]
Description=loop weekly, {plan.when()} UTC

[Timer]
OnCalendar={DAYS[plan.weekday]} *-*-* {plan.hour:02d}:{plan.minute:02d}:00 UTC
Persistent=true

[Install]
WantedBy=timers.target
"""
    return service, timer


def sync_service(workdir: str, loop: str, seconds: float = 1.0) -> str:
    """A service that delivers logged drafts to the sheet as they come, for a fleet of agent hosts
    that log with `log_draft(..., wait=False)` into one PostgreSQL store."""
    workdir, loop = _absolute(workdir, "working folder"), _absolute(loop, "loop program")
    return f"""\
# ~/.config/systemd/user/loop-sync.service: delivers drafts from the store to the sheet, continuously.
# Put LOOP_SHEET=..., LOOP_STORE=postgresql://... one a line in ~/{ENV_FILE}.
# Enable: systemctl --user daemon-reload && systemctl --user enable --now loop-sync.service
[Unit]
Description=loop sync: deliver logged drafts to the sheet
After=network-online.target

[Service]
WorkingDirectory={workdir.replace("%", "%%")}
EnvironmentFile=-%h/{ENV_FILE}
ExecStart={_systemd_word(loop)} sync --watch {seconds:g}
Restart=on-failure
RestartSec=10

[Install]
WantedBy=default.target
"""
