"""The studio's main window: setup and reward on the left, curves in the middle,
samples / runs / log below, run controls in the toolbar and the status bar."""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QToolBar,
    QWidget,
)

from core import default_run_name
from core.config import ConfigError, RunConfig, from_dict, save_config, to_dict, validate
from core.events import Checkpoint, Log, Metrics, RewardFailure, Samples, Status
from core.paths import data_dir
from core.store import LIVE, Store, error_reason, shown_url
from studio.dashboard import Dashboard, RunSeries
from studio.follow import RunFollower
from studio.process_run import ProcessRun
from studio.reward_editor import RewardEditor
from studio.runs_view import RunsView
from studio.samples_view import SamplesView
from studio.setup_panel import SetupPanel, user_recipes_dir
from studio.worker import (
    EventPump,
    Progress,
    RunCreated,
    RunEnded,
    RunThread,
    collect_garbage_in_gui_thread,
)

DEFAULT_RECIPE = "sentiment_ppo"
LOG_LINES = 2000
SAMPLES_LOADED = 5000  # a reopened run shows its newest samples; exports carry them all
STOP_WAIT_S = 120


def studio_settings() -> QSettings:
    return QSettings(str(data_dir() / "studio.ini"), QSettings.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, db_url: str | None = None, recipe: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("RL Studio")
        self.settings = studio_settings()
        self.store = Store(db_url)
        self.db_url = self.store.url
        self.thread: RunThread | None = None
        self.proc: ProcessRun | None = None  # a run of several processes (torchrun)
        self.follower: RunFollower | None = None
        self.shown_run_id: int | None = None
        self.last_run_id: int | None = None  # the newest run this window started
        self.live = RunSeries("live")
        self.base_cfg = RunConfig()
        self.config: RunConfig | None = None
        self.config_error = ""
        self._t_start = 0.0

        self.setup = SetupPanel(self.settings)
        self.rewards = RewardEditor()
        self.rewards.samples_source = self._try_rows
        self.dashboard = Dashboard()
        self.samples = SamplesView()
        self.runs = RunsView(self.store)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.setCentralWidget(self.dashboard)
        self.docks = {
            "setup": self._dock("Run setup", self.setup, Qt.LeftDockWidgetArea),
            "reward": self._dock("Reward", self.rewards, Qt.LeftDockWidgetArea),
            "samples": self._dock("Samples", self.samples, Qt.BottomDockWidgetArea),
            "runs": self._dock("Runs", self.runs, Qt.BottomDockWidgetArea),
            "log": self._dock("Log", self.log, Qt.BottomDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["setup"], self.docks["reward"])
        self.tabifyDockWidget(self.docks["samples"], self.docks["runs"])
        self.tabifyDockWidget(self.docks["runs"], self.docks["log"])
        self.docks["setup"].raise_()
        self.docks["samples"].raise_()

        self._build_toolbar()
        self._build_status_bar()

        collect_garbage_in_gui_thread()
        self.pump = EventPump(self)
        self.pump.delivered.connect(self._on_events)
        self._validate_timer = QTimer(self, singleShot=True, interval=150)
        self._validate_timer.timeout.connect(self.revalidate)
        self.setup.changed.connect(self._validate_timer.start)
        self.rewards.changed.connect(self._validate_timer.start)
        self.setup.recipe_loaded.connect(self._recipe_loaded)
        self.setup.save_requested.connect(self._save_recipe)
        self.runs.open_requested.connect(self.open_run)
        self.runs.compare_requested.connect(self.compare_runs)
        self.runs.resume_requested.connect(self.resume)
        self.runs.message.connect(self.statusBar().showMessage)
        self.runs.connection.connect(self._connection_changed)

        self._load_first_recipe(recipe)
        self._restore_layout()
        self.banner_bar.hide()  # a saved layout may hold it shown; it shows only when lost
        self._update_controls()

    # --- building ---------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        bar = QToolBar("Run")
        bar.setObjectName("toolbar-run")
        self.addToolBar(bar)

        def action(text: str, slot, shortcut: str, tip: str) -> QAction:
            a = QAction(text, self)
            a.setShortcut(QKeySequence(shortcut))
            a.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
            a.triggered.connect(slot)
            bar.addAction(a)
            return a

        self.start_action = action("Start", self.start, "Ctrl+Return", "Start a run")
        self.pause_action = action("Pause", self.toggle_pause, "Ctrl+P", "Pause / resume")
        self.stop_action = action("Stop", self.stop, "Ctrl+.", "Stop after this token or step")
        self.save_action = action(
            "Save checkpoint", self.save_checkpoint, "Ctrl+S", "Save a checkpoint now"
        )
        bar.addSeparator()
        self.live_action = action("Show live run", self.show_live, "Ctrl+L", "Back to the live run")
        bar.addSeparator()
        self.open_store_action = action(
            "Open store...", self.open_store_dialog, "Ctrl+O", "Show the runs of another store"
        )
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #d9534f; padding-left: 8px;")
        bar.addWidget(self.message)

        # a lost database connection: one line across the window until it answers again
        self.addToolBarBreak()
        self.banner_bar = QToolBar("Connection")
        self.banner_bar.setObjectName("toolbar-banner")
        self.banner_bar.setMovable(False)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #8a6d1f; color: white; padding: 4px 8px;")
        self.banner_bar.addWidget(self.banner)
        self.addToolBar(self.banner_bar)
        self.banner_bar.hide()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.step_label = QLabel("No run")
        self.eta_label = QLabel()
        self.device_label = QLabel()
        self.memory_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setRange(0, 0)  # busy: loading has no known length
        self.progress.hide()
        for w in (
            self.progress,
            self.step_label,
            self.eta_label,
            self.device_label,
            self.memory_label,
        ):
            bar.addPermanentWidget(w)

    def _load_first_recipe(self, recipe: str | None) -> None:
        name = recipe or self.settings.value("last_recipe", DEFAULT_RECIPE)
        try:
            if recipe and Path(recipe).is_file():
                self.setup.load_recipe(Path(recipe))
                return
            self.setup.select_recipe(name)
            if self.setup.recipe.currentText() != name:
                self.setup.select_recipe(DEFAULT_RECIPE)
            self.setup.load_recipe(self.setup._recipe_path())
        except ConfigError as exc:
            self._say(str(exc))

    def _recipe_loaded(self, cfg: RunConfig) -> None:
        self.base_cfg = cfg
        self.rewards.set_components(cfg.reward.components, cfg.base_dir)
        self.settings.setValue("last_recipe", self.setup.recipe.currentText())
        self.revalidate()

    # --- the config ---------------------------------------------------------------------

    def revalidate(self, save_code: bool = False) -> RunConfig | None:
        """Build the config from the panels; on a problem, Start is off and says why."""
        data, errors = self.setup.merged(to_dict(self.base_cfg))
        problems = list(errors.values()) + self.rewards.errors()
        cfg = None
        if not problems:
            comps = self.rewards.components(save=save_code)
            data["reward"]["components"] = [to_dict(c) for c in comps]
            try:
                cfg = validate(
                    dataclasses.replace(from_dict(RunConfig, data), base_dir=self.base_cfg.base_dir)
                )
            except ConfigError as exc:
                problems.append(str(exc))
        n = self.setup.processes.value()
        if cfg is not None and n > cfg.training.batch_size:
            problems.append(
                f"{n} processes need at least {n} prompts per step (training.batch_size)"
            )
            cfg = None
        self.config = cfg
        self.config_error = problems[0] if problems else ""
        self._update_controls()
        return cfg

    # --- run controls -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        in_window = self.thread is not None and self.thread.isRunning()
        return in_window or self.proc is not None

    def _update_controls(self) -> None:
        running = self.running
        in_window = running and self.thread is not None
        self.start_action.setEnabled(not running and self.config is not None)
        self.start_action.setToolTip(self.config_error or "Start a run (Ctrl+Return)")
        self.pause_action.setEnabled(in_window)
        self.stop_action.setEnabled(running)
        self.save_action.setEnabled(in_window)
        many = "; a run of several processes cannot (Stop saves a checkpoint)"
        self.pause_action.setToolTip("Pause the run" + ("" if in_window or not running else many))
        self.live_action.setEnabled(running and self.shown_run_id != self._live_id())
        paused = in_window and self.thread.control.paused
        self.pause_action.setText("Resume" if paused else "Pause")
        if not running:  # a run's failure stays said until a setting needs saying instead
            if self.config_error:
                self.message.setText(f"Cannot start: {self.config_error}")
            elif self.message.text().startswith("Cannot start"):
                self.message.clear()

    def _live_id(self) -> int | None:
        if self.proc is not None:
            return self.proc.run_id
        return self.thread.run_id if self.thread is not None and self.thread.run_id else None

    def start(self) -> bool:
        if self.running:
            return False
        cfg = self.revalidate(save_code=True)
        if cfg is None:
            return False
        self.setup.remember_model(cfg.model.name)
        if self.setup.processes.value() > 1:
            recipe = data_dir() / "launched" / f"{time.strftime('%Y%m%d-%H%M%S')}.toml"
            recipe.parent.mkdir(parents=True, exist_ok=True)
            save_config(_absolute_paths(cfg), recipe)
            args = ["train", str(recipe), "--db", self.db_url, "--name", self._run_name(cfg)]
            self._begin_processes(args)
            return True
        self._begin(RunThread(self.db_url, cfg, name=self._run_name(cfg)))
        return True

    def resume(self, run_id: int) -> None:
        if self.running:
            self._say("A run is already training; stop it first")
            return
        if str(self.store.run(run_id).status) in LIVE:
            self._say(f"Run {run_id} is training in another process; it cannot be resumed here")
            return
        ckpt = self.store.newest_checkpoint_on_disk(run_id)
        # the steps up to the checkpoint it resumes from; the live points follow them
        self.live = self._show_stored(run_id, up_to=ckpt.step if ckpt else 0)
        self.shown_run_id = self.last_run_id = self.runs.live_run_id = run_id
        if self.setup.processes.value() > 1:
            self._begin_processes(["resume", str(run_id), "--db", self.db_url], run_id, ckpt)
            return
        self._begin(RunThread(self.db_url, resume_id=run_id))

    def _run_name(self, cfg: RunConfig) -> str:
        recipe = self.setup.recipe.currentText().removesuffix(" (mine)")
        return default_run_name(cfg, recipe)

    def _begin(self, thread: RunThread) -> None:
        self.thread = thread
        if thread.resume_id is None:
            self.live = RunSeries("live")
            self.dashboard.show_runs([self.live])
            self.samples.clear()
            self.shown_run_id = None
        self.pump.follow(thread.events)
        self._t_start = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.step_label.setText("Starting...")
        self.message.clear()
        thread.start()
        self._update_controls()

    def _begin_processes(self, cli_args: list[str], resume_id=None, ckpt=None) -> None:
        """`rlstudio CLI_ARGS` as several processes under torchrun, followed via the store."""
        n = self.setup.processes.value()
        self.proc = ProcessRun(n, cli_args, self)
        self.proc.output.connect(lambda line: self._log("processes", line))
        self.proc.run_created.connect(self._process_run_created)
        self.proc.finished.connect(self._process_finished)
        if resume_id is None:
            self.live = RunSeries("live")
            self.dashboard.show_runs([self.live])
            self.samples.clear()
            self.shown_run_id = None
        self._t_start = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.step_label.setText(f"Starting {n} processes...")
        self.message.clear()
        self._log("info", "launching: " + shlex.join(self.proc.command))
        self.proc.start()
        if resume_id is not None:
            self.proc.run_id = resume_id
            self._process_run_created(resume_id, ckpt.step if ckpt else 0)
        self._update_controls()

    def _process_run_created(self, run_id: int, after_step: int = 0) -> None:
        self._run_created(run_id)
        self.follower = RunFollower(self.store, run_id, after_step, self)
        self.follower.metrics.connect(self._on_events)
        self.follower.samples.connect(self._followed_samples)
        self.follower.start()

    def _followed_samples(self, rows: list) -> None:
        if self.shown_run_id == self._live_id():
            self.samples.add_items(rows)

    def _process_finished(self, code: int, error: str) -> None:
        if self.follower is not None:  # the last steps, while the run still counts as live
            self.follower.stop()
            self.follower.poll(final=True)
            self.follower = None
        proc, self.proc = self.proc, None
        run_id = proc.run_id if proc is not None else None
        state = "failed"
        if run_id is not None and (code == 0 or proc.stopping):
            try:
                state = str(self.store.run(run_id).status)
            except Exception:  # the store is away: the exit code is all there is
                state = "completed" if code == 0 else "stopped"
        ok = state in ("completed", "stopped")
        self._ended(RunEnded(run_id, state, "" if ok else error or f"torchrun exited {code}"))

    def _loading(self, text: str) -> None:
        """A loading message; one ending in "NN%" (the model conversion) fills the bar."""
        percent = re.search(r"(\d{1,3})%$", text)
        if percent:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(percent.group(1)))
        else:
            self.progress.setRange(0, 0)  # busy: no known length
        self.progress.show()
        self.step_label.setText(text)

    def toggle_pause(self) -> None:
        if not self.running or self.thread is None:
            return
        control = self.thread.control
        if control.paused:
            if self.thread.cfg is not None:
                self.rewards.components(save=True)  # a fixed reward is re-read from its file
            control.resume()
        else:
            control.pause()
            self.step_label.setText(self.step_label.text() + " (pausing...)")
        self._update_controls()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.step_label.setText("Stopping every process at the end of this step...")
        elif self.running:
            self.thread.control.stop()
            self.step_label.setText("Stopping after the current token or step...")

    def save_checkpoint(self) -> None:
        if self.running and self.thread is not None:
            self.thread.control.request_checkpoint()
            self._say("A checkpoint will be saved before the next step", error=False)

    def show_live(self) -> None:
        if self.running:  # a run of several processes too: the follower fills self.live
            self.dashboard.show_runs([self.live])
            self.samples.clear()
            if self._live_id():
                self._load_samples(self._live_id())
            self.shown_run_id = self._live_id()
            self._update_controls()

    # --- events from the worker ---------------------------------------------------------

    def _run_created(self, run_id: int) -> None:
        self.last_run_id = run_id
        if self.shown_run_id is None:  # the live run is on screen (not a stored one)
            self.shown_run_id = run_id
        self.runs.live_run_id = run_id
        self.runs.refresh()

    def _on_events(self, events: list) -> None:
        showing_live = self.shown_run_id == self._live_id() or self.shown_run_id is None
        for event in events:
            if isinstance(event, Metrics):
                self.live.add(event.step, event.wall_time, event.values)
                if showing_live:
                    self.dashboard.mark_dirty()
                self._step_status(event)
            elif isinstance(event, Samples):
                if showing_live:
                    self.samples.add_items(event.rows)
            elif isinstance(event, Status):
                self._status(event)
            elif isinstance(event, Log):
                self._log(event.level, event.message)
            elif isinstance(event, Checkpoint):
                self._log("info", f"checkpoint at step {event.step}: {event.path}")
            elif isinstance(event, Progress):
                self._loading(event.text)
            elif isinstance(event, RewardFailure):
                self._reward_failed(event)
            elif isinstance(event, RunCreated):
                self._run_created(event.run_id)
            elif isinstance(event, RunEnded):
                self._ended(event)

    def _step_status(self, event: Metrics) -> None:
        total = self.thread.cfg.training.steps if self.thread and self.thread.cfg else 0
        total = total or (self.store.run(self._live_id()).total_steps if self._live_id() else 0)
        text = f"Step {event.step} / {total}" if total else f"Step {event.step}"
        self.step_label.setText(text)
        if event.step and total and event.wall_time > 0:
            first = self.live.series.get("reward/mean")
            done = event.step - (int(first.steps[0]) - 1 if first is not None and first.n else 0)
            per_step = event.wall_time / max(done, 1)
            left = per_step * (total - event.step)
            self.eta_label.setText(f"ETA {_clock(left)} ({per_step:.1f} s/step)")
        mem = event.values.get("memory/peak_mb")
        if mem is not None and math.isfinite(mem):
            self.memory_label.setText(f"Memory {mem:,.0f} MB")

    def _status(self, event: Status) -> None:
        if event.state == "running":
            self.progress.hide()
            if event.message.startswith("Training"):
                device = event.message.split("(")[-1].rstrip(")") if "(" in event.message else ""
                self.device_label.setText(device)
            self._log("info", event.message)
        elif event.state == "paused":
            self.step_label.setText(f"Paused at step {event.step} / {event.total_steps}")
            self._log("info", event.message or "Paused")
        else:
            self._log("info", f"{event.state}: {event.message}")
        self._update_controls()

    def _reward_failed(self, event) -> None:
        self.docks["reward"].raise_()
        self.rewards.show_error(
            f"{event.message}\nFix the code, then press Resume.", event.lineno, event.component
        )
        self._say(f"Reward failed (run paused): {event.message}")
        self._log("error", event.message)

    def _ended(self, ended: RunEnded) -> None:
        run_id, state, error = ended.run_id, ended.state, ended.error
        self.pump.stop()
        self.progress.hide()
        self.runs.live_run_id = None
        self.runs.refresh()
        self.step_label.setText(f"Run {run_id or ''} {state}".replace("  ", " "))
        self.eta_label.clear()
        if state == "failed" and not run_id and ended.error_type.startswith("Reward"):
            # the reward did not load (a syntax error...): no run exists; show it at the code
            self.docks["reward"].raise_()
            self.rewards.show_error(error)
            self._say(f"The reward does not load: {error}")
        elif state == "failed":
            self._say(error)
            self._log("error", error)
            self.error_box = QMessageBox(
                QMessageBox.Critical, "Run failed", error or "The run failed", parent=self
            )
            self.error_box.open()  # not modal-blocking: the window stays usable
        if self.thread is not None:
            self.thread.wait(5000)
            self.thread = None
        self._update_controls()

    def _log(self, level: str, text: str) -> None:
        self.log.appendPlainText(f"[{level}] {text}")

    def _say(self, text: str, error: bool = True) -> None:
        self.message.setStyleSheet(
            f"color: {'#d9534f' if error else '#3c9a5f'}; padding-left: 8px;"
        )
        self.message.setText(text)

    # --- the store --------------------------------------------------------------------

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
        self.banner_bar.hide()
        self.setWindowTitle(f"RL Studio — {shown_url(url)}")
        self.statusBar().showMessage(f"Showing the runs in {shown_url(url)}", 10_000)
        return True

    def _connection_changed(self, ok: bool, reason: str) -> None:
        where = shown_url(self.db_url)
        if ok:
            self.banner_bar.hide()
            self.statusBar().showMessage(f"Connected to {where} again", 10_000)
            return
        self.banner.setText(
            f"Lost the connection to {where} ({reason}). Retrying every few seconds; "
            "a training run keeps its rows and writes them once the database is back."
        )
        self.banner_bar.show()

    # --- past runs ----------------------------------------------------------------------

    def _show_stored(self, run_id: int, up_to: int | None = None) -> RunSeries:
        info = self.store.run(run_id)
        metrics = self.store.metrics(run_id)
        series = RunSeries.from_store(f"{run_id}: {info.name}", metrics, up_to=up_to)
        self.dashboard.show_runs([series])
        self.samples.clear()
        self._load_samples(run_id, up_to)
        return series

    def _load_samples(self, run_id: int, up_to: int | None = None) -> None:
        """The run's newest stored samples (up to a step) into the samples table."""
        total = self.store.sample_count(run_id)
        rows = self.store.samples(
            run_id, offset=max(0, total - SAMPLES_LOADED), limit=SAMPLES_LOADED
        )
        self.samples.add_items(r for r in rows if up_to is None or r.step <= up_to)

    def open_run(self, run_id: int) -> None:
        if self.running and run_id == self._live_id():
            self.show_live()
            return
        self._show_stored(run_id)
        self.shown_run_id = run_id
        self.statusBar().showMessage(f"Showing run {run_id}", 5000)
        self._update_controls()

    def compare_runs(self, run_ids: list[int]) -> None:
        runs = []
        for run_id in run_ids:
            info = self.store.run(run_id)
            runs.append(RunSeries.from_store(f"{run_id}: {info.name}", self.store.metrics(run_id)))
        self.dashboard.show_runs(runs)
        self.shown_run_id = -1
        self._update_controls()

    def _try_rows(self) -> list[tuple[str, str, dict]]:
        """The prompt set's first prompts with their columns (references, answers...), and
        the newest completions of the run on screen (else the reference itself)."""
        from core.config import DataConfig
        from core.data import load_prompts

        try:
            data = DataConfig(prompts=self.setup.prompts.currentText().strip())
            prompt_set = load_prompts(data, self.setup.base_dir)
        except Exception:
            return [(i.prompt, i.completion, {}) for i in self.samples.recent(4)]
        recent = [i.completion for i in self.samples.recent(4)]
        rows = []
        for i in range(min(4, len(prompt_set))):
            columns = {k: v[i] for k, v in prompt_set.columns.items()}
            fallback = columns.get("reference", columns.get("answer", ""))
            completion = recent[i] if i < len(recent) else str(fallback or "")
            rows.append((prompt_set.prompts[i], completion, columns))
        return rows

    # --- recipes, layout, closing -------------------------------------------------------

    def _save_recipe(self) -> None:
        cfg = self.revalidate(save_code=True)
        if cfg is None:
            self._say(f"Fix the settings before saving: {self.config_error}")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save recipe", str(user_recipes_dir() / "my_recipe.toml"), "Recipe (*.toml)"
        )
        if path:
            self.save_recipe_to(Path(path), cfg)

    def save_recipe_to(self, path: Path, cfg: RunConfig) -> None:
        save_config(_absolute_paths(cfg), path)
        self.setup.refresh_recipes()
        self.statusBar().showMessage(f"Saved recipe {path}", 5000)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("geometry")
        state = self.settings.value("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event) -> None:
        if self.running:
            answer = QMessageBox.question(
                self,
                "A run is training",
                "Stop the run (it is saved as stopped, with a checkpoint) and quit?",
            )
            if answer != QMessageBox.Yes:
                event.ignore()
                return
            if not self.stop_and_wait():
                self._say("The run has not stopped yet; try closing again in a moment")
                event.ignore()
                return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState())
        self.settings.sync()
        self.store.close()
        super().closeEvent(event)

    def stop_and_wait(self, timeout_s: float = STOP_WAIT_S) -> bool:
        """Stop the run and wait for its thread, keeping the window painted meanwhile."""
        from PySide6.QtWidgets import QApplication

        if self.proc is not None:
            self.proc.stop()
            deadline = time.monotonic() + timeout_s
            while self.proc is not None:  # until _process_finished has run
                if time.monotonic() > deadline:
                    return False
                QApplication.processEvents()
                if self.proc is not None:
                    self.proc.proc.waitForFinished(50)
            return True
        if self.thread is None:
            return True

        self.thread.control.stop()
        deadline = time.monotonic() + timeout_s
        while self.thread is not None:  # until its RunEnded has been handled
            if time.monotonic() > deadline:
                return False
            QApplication.processEvents()
            self.pump.drain()
            if self.thread is not None:
                self.thread.wait(50)
        return True


def _absolute_paths(cfg: RunConfig) -> RunConfig:
    """A recipe saved elsewhere must still find its prompt file and data set."""
    from core.data import bundled_prompt_sets

    data, ilql = cfg.data, cfg.ilql
    if data.prompts not in bundled_prompt_sets():
        data = dataclasses.replace(data, prompts=str(cfg.resolve_path(data.prompts).resolve()))
    if ilql.dataset:
        ilql = dataclasses.replace(ilql, dataset=str(cfg.resolve_path(ilql.dataset).resolve()))
    components = tuple(
        dataclasses.replace(
            c, params={**c.params, "path": str(cfg.resolve_path(c.params["path"]).resolve())}
        )
        if c.kind == "python" and c.params.get("path")
        else c
        for c in cfg.reward.components
    )
    reward = dataclasses.replace(cfg.reward, components=components)
    return dataclasses.replace(cfg, data=data, ilql=ilql, reward=reward)


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
