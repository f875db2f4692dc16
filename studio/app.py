"""Open the studio window: `rlstudio` (or `rlstudio studio --db URL --recipe FILE`)."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlstudio studio", description="Open the RL Studio window")
    p.add_argument("--db", help="SQLAlchemy URL of the store (default: SQLite in the data folder)")
    p.add_argument("--recipe", help="a recipe name or .toml file to open with")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if _no_display():
        print(
            "rlstudio: no display to open the studio on; train headless with "
            "`rlstudio train assets/recipes/sentiment_ppo.toml` (see `rlstudio --help`)",
            file=sys.stderr,
        )
        return 2
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    from core import __version__
    from core.paths import assets_dir
    from core.store import MigrationError
    from studio.main_window import MainWindow
    from studio.tasks import finish_garbage_collection
    from studio.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("RL Studio")
    app.setOrganizationName("RL Studio")
    app.setDesktopFileName("io.rlstudio.RLStudio")  # the installed .desktop entry (Wayland)
    app.setWindowIcon(QIcon(str(assets_dir() / "app" / "rlstudio.png")))
    from studio.main_window import studio_settings
    from studio.menus import THEME_KEY

    apply_theme(app, str(studio_settings().value(THEME_KEY, "system")))
    try:
        window = MainWindow(db_url=args.db, recipe=args.recipe)
    except MigrationError as exc:  # a database this version cannot open: say so, touch nothing
        QMessageBox.critical(None, "RL Studio", str(exc))
        return 2
    if window.store.backup is not None:
        window.statusBar().showMessage(
            f"Database upgraded for RL Studio {__version__}; the old copy is {window.store.backup}",
            30_000,
        )
    window.show()
    code = app.exec()
    del window
    finish_garbage_collection()
    # Everything is stored and closed by now (the window's close stops a run and closes
    # the store). Skip the interpreter's teardown: after a run has trained, its final
    # garbage collection can hit a refcount bug in a C extension and abort the process.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _no_display() -> bool:
    """Linux without X11 / Wayland (an SSH session, a server): Qt would abort."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


if __name__ == "__main__":
    raise SystemExit(main())
