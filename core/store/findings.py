"""The run doctor's findings in the store: written as the recorder hands them on (one row
per problem, updated as it goes on), read back for the CLI, the Health panel and the runs
list's badge."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.events import SEVERITIES, Finding
from core.store.lifecycle import StoreSessions
from core.store.schema import FindingRecord


class RunFindings(StoreSessions):
    def add_findings(self, run_id: int, findings: Sequence[Finding]) -> None:
        """Stores findings; one already stored (same kind and start step) is updated."""
        with self._write() as session:
            self._require_run(session, run_id)
            self._add_findings(session, run_id, findings)

    def _add_findings(self, session: Session, run_id: int, findings: Sequence[Finding]) -> None:
        for f in findings:
            row = session.scalar(
                select(FindingRecord).where(
                    FindingRecord.run_id == run_id,
                    FindingRecord.kind == f.kind,
                    FindingRecord.step == f.step,
                )
            )
            if row is None:
                row = FindingRecord(run_id=run_id, kind=f.kind, step=f.step)
                session.add(row)
            row.severity, row.last_step = f.severity, f.last_step
            row.evidence_json = json.dumps(f.evidence)  # NaN kept: json reads it back
            row.explanation, row.suggestion = f.explanation, f.suggestion

    def replace_findings(self, run_id: int, findings: Sequence[Finding]) -> None:
        """The run's findings become these (`rlstudio doctor --save` after a re-run)."""
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(FindingRecord).where(FindingRecord.run_id == run_id))
            self._add_findings(session, run_id, findings)

    def findings(self, run_id: int) -> list[Finding]:
        """The run's findings by the step each began."""
        query = (
            select(FindingRecord)
            .where(FindingRecord.run_id == run_id)
            .order_by(FindingRecord.step, FindingRecord.kind)
        )
        with self._read() as session:
            self._require_run(session, run_id)
            return [
                Finding(
                    kind=row.kind,
                    severity=row.severity,
                    step=row.step,
                    last_step=row.last_step,
                    evidence=json.loads(row.evidence_json),
                    explanation=row.explanation,
                    suggestion=row.suggestion,
                )
                for row in session.scalars(query)
            ]

    def worst_findings(self) -> dict[int, str]:
        """Run id -> the most severe of its findings, for the runs that have any."""
        query = select(FindingRecord.run_id, FindingRecord.severity).distinct()
        worst: dict[int, str] = {}
        with self._read() as session:
            for run_id, severity in session.execute(query):
                rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
                if run_id not in worst or rank > SEVERITIES.index(worst[run_id]):
                    worst[run_id] = SEVERITIES[rank]
        return worst
