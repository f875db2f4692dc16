"""The samples table's filter and the token colouring."""

from __future__ import annotations

from PySide6.QtCore import Qt

from core.events import Sample
from studio.panels.samples_view import SamplesView, token_html


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
