"""The doctor: runs every rule after each step and keeps one finding per problem.

A problem that goes on stays one finding with the step it began; it is sent again only
when it grows more severe. One that has not shown for `GRACE` steps is over: if it comes
back it is a new finding, from its new start."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from core.config import DoctorConfig, RunConfig
from core.doctor.findings import History, RunFacts, Verdict
from core.doctor.rules import RULES
from core.events import Finding

GRACE = 5  # steps without a verdict before an open finding is over


class Doctor:
    def __init__(self, settings: DoctorConfig, facts: RunFacts) -> None:
        self.settings, self.facts = settings, facts
        self.rules = {k: r for k, r in RULES.items() if k not in settings.disable}
        if not settings.enabled:
            self.rules = {}
        self.history = History(size=max(64, settings.stall_steps, 4 * settings.window))
        self.open: dict[str, Finding] = {}
        self.closed: list[Finding] = []
        self._sent: dict[tuple[str, int], Finding] = {}  # as last handed out, by (kind, step)

    @classmethod
    def for_run(cls, cfg: RunConfig) -> Doctor:
        return cls(cfg.doctor, RunFacts.of(cfg))

    def observe(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        """Reads one step's metrics; returns the findings that are new or more severe."""
        self.history.add(step, values)
        news = []
        for kind, rule in self.rules.items():
            verdict = rule(self.history, self.settings, self.facts)
            if verdict is None:
                self._maybe_close(kind, step)
                continue
            finding, changed = self._update(kind, step, verdict)
            self.open[kind] = finding
            if changed:
                news.append(finding)
                self._sent[kind, finding.step] = finding
        return news

    def carry_on(self, findings: Iterable[Finding]) -> None:
        """A resumed run: the findings it had stay open (a problem that goes on after the
        resume is the same finding, sent again only if it grows worse)."""
        for f in sorted(findings, key=lambda f: f.step):
            if f.kind in self.rules:
                self.open[f.kind] = f
                self._sent[f.kind, f.step] = f

    def unsent(self) -> list[Finding]:
        """The findings that went on (or changed) since they were last handed out, as they
        stand now; they count as handed out from here. The run's end sends these, so the
        store holds each finding's last step."""
        out = [f for f in self.findings if self._sent.get((f.kind, f.step)) != f]
        self._sent.update({(f.kind, f.step): f for f in out})
        return out

    def _update(self, kind: str, step: int, verdict: Verdict) -> tuple[Finding, bool]:
        """The open finding of `kind` carried to `step`, and whether it is new or worse."""
        fresh = Finding(
            kind=kind,
            severity=verdict.severity,
            step=step,
            last_step=step,
            evidence=dict(verdict.evidence),
            explanation=verdict.explanation,
            suggestion=verdict.suggestion,
        )
        old = self.open.get(kind)
        if old is None:
            return fresh, True
        if fresh.rank >= old.rank:  # the latest figures, from the same start
            return dataclasses.replace(fresh, step=old.step), fresh.rank > old.rank
        return dataclasses.replace(old, last_step=step), False  # keep the worst it has been

    def _maybe_close(self, kind: str, step: int) -> None:
        old = self.open.get(kind)
        if old is not None and step - old.last_step >= GRACE:
            self.closed.append(self.open.pop(kind))

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, over or not, by the step it began."""
        return sorted([*self.closed, *self.open.values()], key=lambda f: (f.step, f.kind))


def diagnose(cfg: RunConfig, steps: Iterable[tuple[int, Mapping[str, float]]]) -> list[Finding]:
    """The rules run over a whole run's metrics, step by step, as they would have live
    (`rlstudio doctor` does this for a stored run)."""
    doctor = Doctor.for_run(cfg)
    for step, values in steps:
        doctor.observe(step, values)
    return doctor.findings
