"""`make studio` names the system libraries Qt's X11 plugin lacks, as packages to install."""

from __future__ import annotations

import subprocess
import sys

from studio.system_libs import advice, missing_from, missing_libraries, xcb_plugin

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-icccm.so.4 => not found
"""


def test_the_missing_libraries_are_named_once_with_their_packages():
    missing = missing_from(LDD)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    said = advice(missing)
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1" in said
    assert "libxcb-cursor0" not in said  # not Qt's guess: what is really missing


def test_the_check_reads_the_real_plugin_and_its_exit_says_whether_it_can_open():
    assert xcb_plugin() is not None and xcb_plugin().name == "libqxcb.so"
    missing = missing_libraries()
    env = {"QT_QPA_PLATFORM": "xcb", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "studio.system_libs"], capture_output=True, text=True, env=env
    )
    assert done.returncode == (1 if missing else 0)
    for name in missing:
        assert name in done.stderr
