"""A canary measured against the current version on the same days, and stopped by evidence.

Only drafts written since the canary started (until it ended) count, each under the version it was
written with: the canary's version is its arm, the version that was current when it started is the
other. The difference's interval is anytime-valid (`sequential.py`), so a report run every hour does
not raise false alarms. When it says the canary is worse, `guard` stops it: share 0, the reason
recorded. Nothing here ever promotes: a better canary recommends a person's tick.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loop.cell_values import UP
from loop.measure import proportions, sequential
from loop.reviews import Draft
from loop.store import utc_text
from loop.store.prompts import RUNNING, STOPPED, Canary

GUARDRAIL = "guardrail"


@dataclass
class ArmFigures:
    version: str
    drafts: int
    reviewed: int
    up: int
    rate: float | None
    low: float | None
    high: float | None


@dataclass
class CanaryFigures:
    version: str
    base: str  # the version that was current when it started
    share: float  # 0..1 (0 once it ended)
    since: str
    current: ArmFigures
    canary: ArmFigures
    points: float  # canary − current, in points
    low: float  # the difference's anytime-valid interval, in points
    high: float
    verdict: str  # better, worse, too early
    more: int | None  # about how many more reviews per arm would tell
    more_for: float | None  # the difference (in points) `more` is for
    stopped: bool
    reason: str = ""

    def as_json(self) -> dict:
        """CONTRACT §5b's shape, with the base version, the reason and the reviews still needed."""
        return {"version": self.version, "base": self.base, "share": self.share, "since": self.since,
                "arms": {"current": _arm(self.current), "canary": _arm(self.canary)},
                "difference": {"points": self.points, "low": self.low, "high": self.high},
                "verdict": self.verdict, "more_reviews_per_arm": self.more, "stopped": self.stopped,
                "reason": self.reason}

    @property
    def summary(self) -> str:
        """The canary in one sentence, as the Dashboard, `loop status` and the digest say it."""
        share = f"{self.share:.0%} of tickets" if not self.stopped else "stopped"
        head = (f"Canary {self.version} ({share}, since {self.since[:16].replace('T', ' ')}): "
                f"👍 {_rate(self.canary)} vs {self.base} {_rate(self.current)}")
        if min(self.canary.reviewed, self.current.reviewed) >= sequential.MIN_REVIEWS:
            head += f": {self.points:+.0f} points [{self.low:+.0f}, {self.high:+.0f}]"
        elif self.canary.reviewed and self.current.reviewed:
            head += f": {self.points:+.0f} points (no interval before {sequential.MIN_REVIEWS} reviews per arm)"
        if self.stopped:
            return f"{head}. Stopped: {self.reason}"
        if self.verdict == "better":
            return f"{head}. Canary better: tick promote in the Rollout tab or run `loop promote`."
        if self.verdict == "worse":
            return f"{head}. Canary worse."
        tell = (f"; about {self.more} more reviews per arm would tell a {abs(self.more_for):.0f}-point difference"
                if self.more else "")
        return f"{head}. Too early to tell{tell}."


def canary_of(canaries: list[Canary], current: int | None) -> Canary | None:
    """The canary to show: the running one, else the newest that was stopped while the version it was
    measured against is still current."""
    if not canaries:
        return None
    newest = canaries[-1]
    if newest.outcome == RUNNING or (newest.outcome == STOPPED and newest.base == current):
        return newest
    return None


def figures(canary: Canary, drafts: list[Draft]) -> CanaryFigures:
    """The two arms side by side, from people's reviews of drafts written during the canary."""
    started = canary.started_at
    ended = canary.ended_at or "9999"
    during = [d for d in drafts if started <= utc_text(d.created_at) <= ended]
    arms = {label: _arm_figures(label, [d for d in during if d.prompt_version == label])
            for label in (f"v{canary.base}", canary.label)}
    current, new = arms[f"v{canary.base}"], arms[canary.label]
    found = sequential.compare(current.up, current.reviewed, new.up, new.reviewed)
    return CanaryFigures(
        canary.label, f"v{canary.base}", canary.share, started, current, new, round(found.difference * 100, 1),
        round(found.low * 100, 1), round(found.high * 100, 1), found.verdict, found.more,
        None if found.more_for is None else round(found.more_for * 100, 1), canary.outcome == STOPPED, canary.reason)


def guard(records, drafts: list[Draft]) -> CanaryFigures | None:
    """The running canary's figures; when its interval says it is worse, it is stopped first (share 0,
    the figures in the reason). Two hosts guarding at once stop it once."""
    serving = records.serving()
    shown = canary_of(records.canaries(), serving.current if serving else None)
    if shown is None:
        return None
    found = figures(shown, drafts)
    if shown.outcome == RUNNING and found.verdict == "worse":
        reason = (f"the guardrail: 👍 {_rate(found.canary)} vs {found.base} {_rate(found.current)}, "
                  f"{found.points:+.0f} points [{found.low:+.0f}, {found.high:+.0f}], worse at every look (α = 5%)")
        records.stop_canary(reason, who=GUARDRAIL)
        found.stopped, found.reason, found.share = True, records.canary(shown.id).reason, 0.0
    return found


def _arm_figures(label: str, drafts: list[Draft]) -> ArmFigures:
    found = proportions.tally([d.score for d in drafts], UP)
    return ArmFigures(label, len(drafts), found.reviewed, found.up, found.rate, found.low, found.high)


def _arm(arm: ArmFigures) -> dict:
    found = asdict(arm)
    found.pop("version")
    return found


def _rate(arm: ArmFigures) -> str:
    if not arm.reviewed:
        return "— (no reviews)"
    return f"{arm.rate:.0%} ({arm.reviewed} review{'s' if arm.reviewed != 1 else ''})"
