"""The samples table's filter and step range, the token colouring, and the detail pane
that a new run empties."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest

from core.events import Sample
from studio.panels.samples_view import SamplesView, token_html
from tests.studio.helpers import set_field


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


def test_the_step_filter_shows_the_steps_the_table_holds(qtbot):
    view = SamplesView()
    qtbot.addWidget(view)
    view.show()
    boxes = view.step_min, view.step_max
    assert [b.text() for b in boxes] == ["all", "all"]
    view.add_items([_item(3, 0.1), _item(5, 0.2)])
    assert [b.text() for b in boxes] == ["3", "5"]
    view.add_items([_item(7, 0.3)])
    assert [b.text() for b in boxes] == ["3", "7"]  # left at the end, it follows the steps
    view.step_max.selectAll()
    qtbot.keyClicks(view.step_max, "5")  # the user's own bound holds as steps arrive
    view.add_items([_item(9, 0.4)])
    assert [b.text() for b in boxes] == ["3", "5"]
    assert sorted(view.proxy.index(r, 0).data() for r in range(view.proxy.rowCount())) == [3, 5]
    view.clear()
    assert [b.text() for b in boxes] == ["all", "all"]


def _click_row(qtbot, table, row: int) -> None:
    rect = table.visualRect(table.model().index(row, 2))
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())


def _hover_first_token(detail) -> None:
    cursor = QTextCursor(detail.document())
    while not cursor.atEnd() and not cursor.charFormat().isAnchor():
        cursor.movePosition(QTextCursor.NextCharacter)
    cursor.movePosition(QTextCursor.NextCharacter)  # inside the token, not at its edge
    QTest.mouseMove(detail.viewport(), detail.cursorRect(cursor).center())


def test_a_new_run_empties_the_sample_detail_pane(window, qtbot):
    for path, text in (("training.steps", "2"), ("training.batch_size", "4")):
        set_field(window, path, text)
    samples = window.samples
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.live_run is None, timeout=120_000)
    assert samples.model.rowCount() > 0
    _click_row(qtbot, samples.table, 0)
    _hover_first_token(samples.detail)
    assert samples.detail.toPlainText() and samples.components_label.text()
    assert samples.token_info.text().startswith("token 0")

    window.start_action.trigger()  # the next run: nothing of the last one is left on show
    shown = [samples.detail.toPlainText(), samples.components_label.text()]
    shown += [samples.token_info.text(), samples.step_min.text(), samples.step_max.text()]
    qtbot.waitUntil(lambda: window.live_run is None, timeout=120_000)  # before any assert
    assert shown == ["", "", "Hover a token for its logprob, KL and advantage", "all", "all"]
