"""The one layering rule: the engine never imports Qt or the studio."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_qt_and_no_studio():
    code = (
        "import sys, core.cli, core.training.loop, core.runner, core.store, core.rewards\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'studio')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
