"""`rlstudio --smoke-test`: the built bundle checks itself and exits 0, or names what failed.

It does what a first start does, with nothing of the user's touched: the main window opens
(offscreen), two training steps run on tiny-random from the window's own Start into a
throwaway database, the reward worker process starts and stops, and the database's schema
is the one this version expects. `make package-test` runs it on the bundle it built.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STEPS = 2
TIME_LIMIT_S = 300


class SmokeFailure(RuntimeError):
    pass


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(f"rlstudio --smoke-test takes no arguments (got {' '.join(argv)})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rlstudio-smoke-") as home:
        # before Qt or the engine read them: offscreen, and every file in the temp folder
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        os.environ["RLSTUDIO_HOME"] = home
        try:
            _check_all(Path(home))
        except SmokeFailure as failure:
            print(f"smoke test FAILED: {failure}", flush=True)
            return 1
    print("smoke test passed", flush=True)
    return 0


def _ok(what: str, started: float) -> None:
    print(f"ok  {what}  ({time.monotonic() - started:.1f} s)", flush=True)


def _check_all(home: Path) -> None:
    from core import __version__

    print(f"RL Studio {__version__} smoke test, python {sys.version.split()[0]}", flush=True)
    db_url = f"sqlite:///{(home / 'smoke.db').as_posix()}"
    t = time.monotonic()
    _check_schema(db_url)
    _ok("database created at the current schema", t)
    t = time.monotonic()
    from core.lm import ModelError, bundled_gguf

    try:
        gguf = bundled_gguf()  # converted on first use; needs no network
    except ModelError as exc:
        raise SmokeFailure(str(exc)) from None
    _ok(f"default model at hand: {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MB)", t)
    _train_in_the_window(db_url)
    t = time.monotonic()
    _check_schema(db_url)
    _ok("schema still current after the run", t)


def _check_schema(db_url: str) -> None:
    from core.store import schema_problems

    problems = schema_problems(db_url)
    if problems:
        raise SmokeFailure(problems)


def _train_in_the_window(db_url: str) -> None:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from core.paths import assets_dir
    from studio.main_window import MainWindow
    from studio.tasks import finish_garbage_collection

    t = time.monotonic()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    recipe = assets_dir() / "recipes" / "tiny_smoke.toml"  # its reward is user code: a worker
    window = MainWindow(db_url=db_url, recipe=str(recipe))
    window.show()
    app.processEvents()
    if QIcon(str(assets_dir() / "app" / "rlstudio.png")).pixmap(64).isNull():
        raise SmokeFailure("the app icon does not load")
    _ok(f"main window and icon ({app.platformName()})", t)

    _train_one_process(app, window, db_url)
    _train_two_processes(app, window, db_url)

    window.close()
    window.deleteLater()
    QCoreApplication.processEvents()
    finish_garbage_collection()


def _set_steps(window, steps: int) -> None:
    from PySide6.QtWidgets import QLineEdit

    field = window.setup.form.widget_for("training.steps")
    assert isinstance(field, QLineEdit)
    field.setText(str(steps))
    window.revalidate()


def _train_one_process(app, window, db_url: str) -> None:
    """STEPS steps in the window's own thread, from its Start; the reward worker comes and
    goes with the run."""
    import psutil

    from core.store import RunStatus, Store

    t = time.monotonic()
    _set_steps(window, STEPS)
    if not window.start_action.isEnabled():
        raise SmokeFailure(f"Start is disabled: {window.config_error}")
    window.start_action.trigger()
    me = psutil.Process()
    workers_seen: set[int] = set()

    def reward_workers() -> list[psutil.Process]:
        found = []
        for child in me.children(recursive=True):
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

    def run_over() -> bool:
        workers_seen.update(p.pid for p in reward_workers())
        return window.live_run is None and window.last_run_id is not None

    _pump(app, run_over, "the two-step run")
    run_id = window.last_run_id
    with Store(db_url) as store:
        info = store.run(run_id)
        rewards = store.metrics(run_id, keys=["reward/mean"]).get("reward/mean")
        samples = store.sample_count(run_id)
    if info.status != RunStatus.COMPLETED or rewards is None or len(rewards.steps) != STEPS:
        raise SmokeFailure(
            f"run {run_id} is {info.status.value} with "
            f"{0 if rewards is None else len(rewards.steps)} reward points: {info.error or ''}"
        )
    _ok(f"trained {STEPS} steps on tiny-random: run {run_id} completed, {samples} samples", t)

    t = time.monotonic()
    if not workers_seen:
        raise SmokeFailure("no reward worker process was started")
    _pump(app, lambda: not reward_workers(), "the reward worker to stop", limit_s=30)
    _ok(f"reward worker started (pid {min(workers_seen)}) and stopped", t)


def _train_two_processes(app, window, db_url: str) -> None:
    """Two processes under torchrun, launched by the window (in a frozen app: the app's own
    `rlstudio torchrun`), followed through the store. gloo: it works with any GPU count."""
    from core.store import RunStatus, Store

    t = time.monotonic()
    os.environ["RLSTUDIO_DIST_BACKEND"] = "gloo"
    os.environ.setdefault("RLSTUDIO_DIST_TIMEOUT_S", "120")
    window.setup.processes.setValue(2)
    _set_steps(window, 1)
    window.start_action.trigger()
    _pump(app, lambda: not window.running, "the two-process run")
    run_id = window.last_run_id
    with Store(db_url) as store:
        info = store.run(run_id) if run_id else None
    if info is None or info.status != RunStatus.COMPLETED or info.last_step != 1:
        tail = window.log.toPlainText().splitlines()[-15:]
        raise SmokeFailure(
            f"the two-process run did not complete: {window.message.text()}\n" + "\n".join(tail)
        )
    _ok(f"trained 1 step as 2 processes (torchrun): run {run_id} completed", t)
    window.setup.processes.setValue(1)


def _pump(app, done: Callable[[], bool], what: str, limit_s: float = TIME_LIMIT_S) -> None:
    """Runs Qt's event loop until `done()`; the window's timers deliver the run's events."""
    deadline = time.monotonic() + limit_s
    while not done():
        if time.monotonic() > deadline:
            raise SmokeFailure(f"waited {limit_s:g} s for {what}")
        app.processEvents()
        time.sleep(0.02)
