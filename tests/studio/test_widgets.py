"""The pieces behind the window: curve buffers and smoothing, the generated form, the
samples table's filter and the token colouring."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt

from core.config import TrainingConfig, to_dict
from core.events import Sample
from studio.config_form import ConfigForm
from studio.dashboard import Dashboard, RunSeries, panel_for
from studio.samples_view import SamplesView, token_html
from studio.series import Series, ema


def test_series_grows_and_smooths_incrementally():
    s = Series(capacity=2)
    for i, v in enumerate([1.0, 2.0, math.nan, 3.0, 4.0]):
        s.append(i, i * 0.5, v)
    assert s.n == 5 and list(s.steps) == [0, 1, 2, 3, 4]
    # debiased EMA with weight 0.5 by hand; the NaN point carries the last average
    expected = [1.0, (0.25 * 1 + 0.5 * 2) / 0.75, (0.25 * 1 + 0.5 * 2) / 0.75]
    np.testing.assert_allclose(s.smoothed(0.5)[:3], expected)
    whole = ema(s.values, 0.5)
    s.append(5, 2.5, 5.0)  # the cached EMA extends to the new point only
    np.testing.assert_allclose(s.smoothed(0.5)[:5], whole)
    np.testing.assert_allclose(s.smoothed(0.5), ema(s.values, 0.5))
    assert s.smoothed(0.0) is not None and s.smoothed(0.0)[3] == 3.0


def test_metric_keys_land_in_their_panels():
    assert panel_for("reward/mean").title == "Reward"
    assert panel_for("reward/letter_e").title == "Reward"
    assert panel_for("reward/std") is None  # drawn as the band around the mean
    assert panel_for("objective/kl_coef").title == "KL to reference"
    assert panel_for("loss/q").title == "Losses"
    assert panel_for("time/update_s") is None


def test_dashboard_draws_live_points_and_a_reward_band(qtbot):
    d = Dashboard()
    qtbot.addWidget(d)
    run = RunSeries("live")
    d.show_runs([run])
    for step in range(1, 6):
        d.add_metrics(0, step, step * 2.0, {"reward/mean": step / 10, "reward/std": 0.1})
    d.redraw_if_dirty()
    assert d.curve_points("reward/mean") == 5
    upper, lower, _ = d._bands[0]
    np.testing.assert_allclose(upper.yData - lower.yData, 0.2)
    d.x_choice.setCurrentIndex(1)  # wall time on the x axis
    d.redraw_if_dirty()
    np.testing.assert_allclose(d._curves[(0, "reward/mean")].xData, [2, 4, 6, 8, 10])


def test_dashboard_exports_png(qtbot, tmp_path):
    d = Dashboard()
    qtbot.addWidget(d)
    d.resize(900, 600)
    run = RunSeries("live")
    run.add(1, 1.0, {"reward/mean": 0.5})
    d.show_runs([run])
    d.export_png(str(tmp_path / "all.png"))
    d.export_png(str(tmp_path / "reward.png"), panel="Reward")
    assert (tmp_path / "all.png").stat().st_size > 1000
    assert (tmp_path / "reward.png").stat().st_size > 500


def test_form_checks_each_field_inline(qtbot):
    form = ConfigForm([("training", TrainingConfig)])
    qtbot.addWidget(form)
    values = dict(to_dict(TrainingConfig()), learning_rate=1e-5, lr_schedule="cosine")
    form.set_values({"training": values})
    data, errors = form.merged({"training": {}})
    assert errors == {}
    assert data["training"]["learning_rate"] == 1e-5
    assert data["training"]["lr_schedule"] == "cosine"
    form.widget_for("training.steps").setText("0")
    form.widget_for("training.batch_size").setText("2.5")
    _, errors = form.merged({"training": {}})
    assert "at least 1" in errors["training.steps"]
    assert "whole number" in errors["training.batch_size"]
    assert "Prompts per step" in form.widget_for("training.batch_size").toolTip()


def _item(step, reward, completion="text"):
    return Sample(step, "prompt", completion, reward, {"r": reward})


def test_samples_filter_by_text_step_and_reward(qtbot):
    view = SamplesView()
    qtbot.addWidget(view)
    view.add_items([_item(1, 0.1, "a cat"), _item(2, 0.9, "a dog"), _item(3, 0.5, "a cow")])
    assert view.proxy.rowCount() == 3
    view.search.setText("dog")
    assert view.proxy.rowCount() == 1
    view.search.setText("")
    view.step_min.setValue(2)
    assert view.proxy.rowCount() == 2
    view.reward_min.setValue(0.6)
    assert view.proxy.rowCount() == 1
    assert view.model.headerData(4, Qt.Horizontal) == "r"  # a column per reward component


def test_token_colouring_follows_the_chosen_quantity():
    item = Sample(
        1,
        "p",
        "ab",
        1.0,
        {},
        tokens=["a", "b<"],
        logprobs=[-0.1, -5.0],
        kl=[0.0, 2.0],
        advantages=[1.0, -1.0],
    )
    by_logprob = token_html(item, "logprob")
    assert "b&lt;" in by_logprob  # token text is escaped
    assert "rgba(220, 60, 60, 0.65)" in by_logprob  # the unlikely token is the reddest
    by_advantage = token_html(item, "advantage")
    assert "rgba(40, 170, 80" in by_advantage and "rgba(60, 110, 230" in by_advantage


def test_runs_browser_renames_and_deletes(qtbot, tmp_path):
    from core.store import Store
    from studio.runs_view import RunsView

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    ids = [
        store.create_run(
            name=f"run {i}", config={}, algorithm="ppo", model="tiny-random", seed=0, total_steps=5
        )
        for i in range(2)
    ]
    view = RunsView(store)
    qtbot.addWidget(view)
    assert view.table.rowCount() == 2
    cell = next(
        view.table.item(r, 1) for r in range(2) if view.table.item(r, 0).data(Qt.UserRole) == ids[0]
    )
    cell.setText("renamed")  # what editing the name cell does
    assert store.run(ids[0]).name == "renamed"
    view.select_ids([ids[1]])
    view._delete(confirm=False)
    assert [r.id for r in store.runs()] == [ids[0]]
    assert view.table.rowCount() == 1
    store.close()


def test_a_reward_error_is_marked_in_the_failing_components_code(qtbot, tmp_path):
    from core.config import RewardComponentConfig
    from studio.reward_editor import RewardEditor

    for name, body in (("first", "return 1.0"), ("second", "return 2.0")):
        code = f"def reward(prompt, completion):\n    x = 1\n    {body}\n"
        (tmp_path / f"{name}.py").write_text(code)
    editor = RewardEditor()
    qtbot.addWidget(editor)
    editor.set_components(
        [
            RewardComponentConfig("python", 1.0, n, {"path": str(tmp_path / f"{n}.py")})
            for n in ("first", "second")
        ]
    )
    editor.table.selectRow(1)
    assert "2.0" in editor.editor.toPlainText()
    editor.show_error("reward 'first': first.py line 3: ZeroDivisionError", 3, "first")
    assert "1.0" in editor.editor.toPlainText()  # the failing reward's code is on screen
    assert editor.editor.error_line == 3
    assert editor.editor.textCursor().blockNumber() == 2
