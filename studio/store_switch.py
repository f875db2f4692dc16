"""Which store the window shows: another SQLite file or database URL (File > Open store),
and what the window says while the connection is lost. A part of `MainWindow` (which
mixes it in)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QInputDialog, QMessageBox

from core.store import Store, error_reason, shown_url


class StoreSwitch:
    """Open another store in the window; say when the connection drops and comes back."""

    def open_store_dialog(self) -> None:
        text, ok = QInputDialog.getText(
            self,
            "Open store",
            "A SQLite file, or a database URL such as\n"
            "postgresql+psycopg://user:password@host:5432/rlstudio",
            text=self.db_url if self.db_url.startswith("sqlite") else "",
        )
        if ok and text.strip():
            self.open_store(text.strip())

    def open_store(self, where: str) -> bool:
        """Switch the window to the store at `where` (a URL, or a SQLite file's path)."""
        if self.running:
            self._say("Stop the run before opening another store")
            return False
        url = where if "://" in where else f"sqlite:///{Path(where).expanduser().resolve()}"
        try:
            store = Store(url)
        except Exception as exc:  # unreachable server, bad URL, missing driver, newer schema
            reason = error_reason(exc)
            QMessageBox.warning(self, "Open store", f"Could not open {shown_url(url)}:\n{reason}")
            return False
        old, self.store, self.db_url = self.store, store, store.url
        self.runs.set_store(store)
        old.close()
        self.shown_run_id = None
        self.banner_bar.show_store(store)
        self.setWindowTitle(f"RL Studio — {shown_url(url)}")
        self.statusBar().showMessage(f"Showing the runs in {shown_url(url)}", 10_000)
        return True

    def _connection_changed(self, ok: bool, reason: str) -> None:
        self.banner_bar.show_connection(ok, reason, shown_url(self.db_url))
        if ok:
            self.statusBar().showMessage(f"Connected to {shown_url(self.db_url)} again", 10_000)
