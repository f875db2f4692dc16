"""Which system libraries Qt's X11 platform plugin needs and this Linux lacks, by their
Debian / Ubuntu package names. Qt itself names only libxcb-cursor0 when any of them is
missing; `make studio` runs this first and says exactly what to install.

Qt-free on purpose: it has to run where Qt cannot load. Exit status 1 when some are missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

PACKAGES = {  # the shared object ldd cannot find -> the package that has it
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """PySide6's X11 platform plugin, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt/plugins/platforms/libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_from(ldd_output: str) -> list[str]:
    """The libraries ldd could not find, each once, in the order it named them."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def missing_libraries(plugin: Path | None = None) -> list[str]:
    plugin = plugin or xcb_plugin()
    if plugin is None or not sys.platform.startswith("linux"):
        return []
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):  # no ldd (musl, a container): Qt will say
        return []
    return missing_from(out.stdout)


def advice(missing: list[str]) -> str:
    packages = [PACKAGES.get(name, name) for name in missing]
    return (
        "The studio's window needs system libraries this machine lacks: "
        + ", ".join(missing)
        + ".\nOn Debian / Ubuntu: sudo apt-get install -y "
        + " ".join(dict.fromkeys(packages))
        + "\n(Training from the command line needs none of them: rlstudio train RECIPE.toml)"
    )


def main() -> int:
    if os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        return 0  # offscreen, wayland...: the X11 plugin is not what Qt will load
    missing = missing_libraries()
    if missing:
        print(advice(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
