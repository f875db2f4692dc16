"""The Health panel as a user meets it: a live run going wrong shows its findings as they
come, the runs list shows the badge, reopening the run shows the stored findings, and
clicking one moves every plot to its step, where a line marks it on its curves."""

from __future__ import annotations

from PySide6.QtCore import Qt

from core.store import Store
from tests.studio.helpers import set_field

WAIT_MS = 180_000


def _click_row(qtbot, panel, row: int) -> None:
    table = panel.table
    rect = table.visualItemRect(table.item(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())


def test_a_run_going_wrong_shows_in_health_the_runs_list_and_on_the_curves(window, qtbot, db_url):
    # the [doctor] settings are in the form, like every other table
    assert window.setup.form.widget_for("doctor.pause_on") is not None
    set_field(window, "training.steps", "4")
    set_field(window, "training.learning_rate", "0.5")
    set_field(window, "training.checkpoint_every", "0")
    window.start_action.trigger()
    # live: the finding arrives while the run trains (KL 270 nats at step 2)
    qtbot.waitUntil(lambda: ("critical", "kl_runaway", 2) in window.health.rows(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    run_id = window.last_run_id
    with Store(db_url) as store:
        assert any(f.kind == "kl_runaway" for f in store.findings(run_id))

    # the runs list: a badge with the worst severity
    window.runs.refresh()
    health_col = [
        window.runs.table.horizontalHeaderItem(c).text()
        for c in range(window.runs.table.columnCount())
    ].index("Health")
    assert window.runs.table.item(0, health_col).text() == "critical"

    # reopened from the store: the same findings, a line on the KL plot at step 2
    window.runs.select_ids([run_id])
    window.runs.buttons["Open"].click()
    rows = window.health.rows()
    assert rows[0] == ("critical", "kl_runaway", 2)
    assert "critical" in window.health.summary.text()
    kl_marks = [
        line.value()
        for plot, line in window.dashboard.marks
        if plot is window.dashboard.plots["KL to reference"]
    ]
    assert 2 in kl_marks

    # click a finding: every plot's x range centres on its step
    window.docks["health"].raise_()
    row = next(i for i, r in enumerate(rows) if r[1] == "kl_runaway")
    with qtbot.waitSignal(window.health.sig_step_chosen, timeout=5000) as chosen:
        _click_row(qtbot, window.health, row)
    assert chosen.args == [2]
    for plot in window.dashboard.plots.values():
        lo, hi = plot.vb.viewRange()[0]
        assert lo < 2 < hi and abs((lo + hi) / 2 - 2) < 1e-6


def test_a_run_with_no_findings_says_so(qtbot):
    from studio.panels.dashboard import Dashboard
    from studio.panels.health_panel import HealthPanel

    dashboard = Dashboard()
    panel = HealthPanel(dashboard)
    qtbot.addWidget(dashboard)
    qtbot.addWidget(panel)
    assert panel.rows() == [] and "nothing wrong" in panel.summary.text()
    assert dashboard.marks == []
