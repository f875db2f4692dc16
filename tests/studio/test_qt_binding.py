"""The Qt binding itself: PySide6 6.12.0 dropped a reference to True on every Signal.emit,
so a window that had emitted a few thousand signals (a long run) died in bool_dealloc."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    plain = Signal()
    pair = Signal(object, object)


def test_emitting_a_signal_leaves_reference_counts_alone(qtbot):
    e = _Emitter()
    e.pair.connect(lambda a, b: None)
    before = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
    for _ in range(50):  # few enough not to crash an affected binding, enough to see
        e.plain.emit()
        e.pair.emit(None, 1)
    after = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
    assert after == before
