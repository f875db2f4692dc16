"""The one background primitive: work off the GUI thread, every answer back in it."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject

from studio.tasks import run_in_background


def test_the_answer_and_the_reports_arrive_in_the_gui_thread_in_order(qtbot):
    parent = QObject()
    worker_threads, got = [], []

    def work(report):
        worker_threads.append(threading.current_thread())
        for i in range(5):
            report(i)
        return "done"

    def progress(batch):
        got.append(("progress", list(batch), threading.current_thread()))

    task = run_in_background(
        work,
        on_done=lambda r: got.append(("done", r, threading.current_thread())),
        on_progress=progress,
        parent=parent,
    )
    qtbot.waitUntil(lambda: task.done, timeout=5_000)
    assert worker_threads and worker_threads[0] is not threading.main_thread()
    assert all(thread is threading.main_thread() for *_, thread in got)
    assert [i for kind, batch, _ in got if kind == "progress" for i in batch] == [0, 1, 2, 3, 4]
    assert got[-1][:2] == ("done", "done")


def test_an_error_arrives_at_on_error(qtbot):
    errors, parent = [], QObject()
    task = run_in_background(
        lambda: 1 / 0, on_done=lambda _: None, on_error=errors.append, parent=parent
    )
    qtbot.waitUntil(lambda: task.done, timeout=5_000)
    assert [type(e) for e in errors] == [ZeroDivisionError]


def test_an_error_nobody_asked_for_is_raised_in_the_gui_thread(qtbot):
    parent = QObject()
    with qtbot.captureExceptions() as raised:
        task = run_in_background(lambda: 1 / 0, on_done=lambda _: None, parent=parent)
        qtbot.waitUntil(lambda: task.done, timeout=5_000)
    assert [type(e[1]) for e in raised] == [ZeroDivisionError]


def test_an_answer_for_a_closed_widget_is_dropped(qtbot):
    parent = QObject()
    release, got = threading.Event(), []
    task = run_in_background(
        lambda: release.wait(5), on_done=got.append, on_error=got.append, parent=parent
    )
    parent.deleteLater()  # the window closes while the read still waits
    qtbot.wait(100)
    release.set()
    assert task.wait(5)
    qtbot.wait(200)
    assert got == [] and not task.done


@pytest.mark.parametrize("reports", [0, 3])
def test_wait_and_drain_deliver_without_the_event_loop(qtbot, reports):
    got, parent = [], QObject()

    def work(report):
        for i in range(reports):
            report(i)
        return "over"

    task = run_in_background(work, on_done=got.append, on_progress=got.extend, parent=parent)
    assert task.wait(5)
    task.drain()  # what a caller waiting for the task does between its own waits
    assert got == [*range(reports), "over"] and task.done
