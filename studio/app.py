"""Open the studio window: `rlstudio` (or `rlstudio studio --db URL --recipe FILE`)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlstudio studio", description="Open the RL Studio window")
    p.add_argument("--db", help="SQLAlchemy URL of the store (default: SQLite in the data folder)")
    p.add_argument("--recipe", help="a recipe name or .toml file to open with")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from studio.main_window import MainWindow
    from studio.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("RL Studio")
    app.setOrganizationName("RL Studio")
    apply_theme(app)
    window = MainWindow(db_url=args.db, recipe=args.recipe)
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
