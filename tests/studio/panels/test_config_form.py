"""The settings form generated from the config dataclasses."""

from __future__ import annotations

from core.config import TrainingConfig, to_dict
from studio.panels.config_form import ConfigForm


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
