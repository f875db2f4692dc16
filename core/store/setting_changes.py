"""Settings changed while a run went on (`core.events.SettingsChanged`): the run's stored
settings and total become the new ones, and each change is kept with its step, so the
studio marks it on the curves when the run is opened later."""

from __future__ import annotations

import json
from itertools import groupby

from sqlalchemy import select

from core.events import SettingsChanged
from core.store.lifecycle import StoreSessions
from core.store.records import dumps
from core.store.schema import SettingChangeRecord


class RunSettingChanges(StoreSessions):
    def record_settings_change(self, run_id: int, change: SettingsChanged) -> None:
        """The run's settings become `change.config` (its total, their steps) and the
        change is kept at its step; in one transaction."""
        with self._write() as session:
            run = self._run_row(session, run_id)
            run.config_json = dumps(change.config)
            run.total_steps = change.total_steps
            session.add_all(
                SettingChangeRecord(
                    run_id=run_id,
                    step=change.step,
                    key=key,
                    old_json=dumps(old),
                    new_json=dumps(new),
                )
                for key, old, new in change.changes
            )

    def setting_changes(self, run_id: int) -> list[SettingsChanged]:
        """The run's changes by step, one `SettingsChanged` a step (without `config`)."""
        query = (
            select(SettingChangeRecord)
            .where(SettingChangeRecord.run_id == run_id)
            .order_by(SettingChangeRecord.step, SettingChangeRecord.id)
        )
        with self._read() as session:
            self._require_run(session, run_id)
            rows = list(session.scalars(query))
            return [
                SettingsChanged(
                    step,
                    tuple((r.key, json.loads(r.old_json), json.loads(r.new_json)) for r in group),
                )
                for step, group in groupby(rows, key=lambda r: r.step)
            ]
