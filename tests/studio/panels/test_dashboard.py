"""The dashboard: metric keys to panels, live points with the reward band, PNG export."""

from __future__ import annotations

import numpy as np

from studio.panels.dashboard import Dashboard, RunSeries, panel_for


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


def test_a_curve_with_one_point_is_drawn_as_a_dot(qtbot):
    d = Dashboard()
    qtbot.addWidget(d)
    d.show_runs([RunSeries("live")])
    d.add_metrics(0, 1, 1.0, {"reward/mean": 0.3})
    d.redraw_if_dirty()
    curve = d._curves[(0, "reward/mean")]
    assert curve.opts["symbol"] == "o"
    xs, ys = curve.scatter.getData()
    assert list(xs) == [1] and list(ys) == [0.3]  # the dot is where the point is
    d.add_metrics(0, 2, 2.0, {"reward/mean": 0.4})
    d.redraw_if_dirty()
    assert curve.opts["symbol"] is None  # two points: a line again
