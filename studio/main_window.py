"""The studio's main window: setup and reward on the left, curves in the middle,
samples / runs / log below, run controls in the toolbar and the status bar."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QWidget,
)

from core import default_run_name, resume_point
from core.config import ConfigError, RunConfig, from_dict, save_config, to_dict, validate
from core.data import with_absolute_paths
from core.paths import data_dir
from core.store import LIVE, Store
from studio.live import (
    LiveRun,
    launch_problem,
    new_run,
    restarted_run,
    resumed_run,
)
from studio.live_events import LiveEvents
from studio.menus import build_menus
from studio.panels.dashboard import Dashboard, RunSeries
from studio.panels.health_panel import HealthPanel
from studio.panels.resume_dialog import AS_STORED, ResumeChoice
from studio.panels.reward_editor import RewardEditor, preview_rows
from studio.panels.runs_view import RunsView
from studio.panels.samples_view import SamplesView
from studio.panels.setting_marks import marks_on
from studio.panels.setup_panel import SetupPanel
from studio.run_toolbar import ConnectionBanner, RunToolbar
from studio.status_bar import RunStatusBar
from studio.store_switch import StoreSwitch
from studio.tasks import collect_garbage_in_gui_thread

DEFAULT_RECIPE = "sentiment_ppo"
LAST_RUN_KEY = "last_run"  # "<store url>|<run id>": the run shown when the window closed
LOG_LINES = 2000
STOP_WAIT_S = 120


def studio_settings() -> QSettings:
    return QSettings(str(data_dir() / "studio.ini"), QSettings.IniFormat)


class MainWindow(LiveEvents, StoreSwitch, QMainWindow):
    def __init__(self, db_url: str | None = None, recipe: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("RL Studio")
        self.settings = studio_settings()
        self.store = Store(db_url)
        self.db_url = self.store.url
        self.live_run: LiveRun | None = None  # the run training now, in-window or processes
        self.shown_run_id: int | None = None
        self.last_run_id: int | None = None  # the newest run this window started
        self.live = RunSeries("live")
        self.base_cfg = RunConfig()
        self.config: RunConfig | None = None
        self.config_error = ""
        self.pause_said = False  # the Log and the status bar have said this pause

        self.setup = SetupPanel(self.settings)
        self.rewards = RewardEditor()
        self.rewards.samples_source = lambda: preview_rows(
            self.setup.prompt_set, self.samples.recent(4)
        )
        self.dashboard = Dashboard()
        self.samples = SamplesView()
        self.runs = RunsView(self.store)
        self.health = HealthPanel(self.dashboard)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.setCentralWidget(self.dashboard)
        self._build_docks()
        self._build_toolbar()
        self.status_bar = RunStatusBar(self.banner_bar)
        self.setStatusBar(self.status_bar)

        collect_garbage_in_gui_thread()
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

        build_menus(self)
        self._load_first_recipe(recipe)
        self._first_layout = self.saveState()  # View > Reset layout goes back to it
        restore_layout(self)
        self.banner_bar.show_store(self.store)  # not as a saved layout left it: as it is now
        self._update_controls()
        self._show_last_run()

    # --- building ---------------------------------------------------------------------

    def _build_docks(self) -> None:
        self.docks = {
            "setup": self._dock("Run setup", self.setup, Qt.LeftDockWidgetArea),
            "reward": self._dock("Reward", self.rewards, Qt.LeftDockWidgetArea),
            "samples": self._dock("Samples", self.samples, Qt.BottomDockWidgetArea),
            "runs": self._dock("Runs", self.runs, Qt.BottomDockWidgetArea),
            "log": self._dock("Log", self.log, Qt.BottomDockWidgetArea),
            "health": self._dock("Health", self.health, Qt.BottomDockWidgetArea),
        }
        for a, b in (("setup", "reward"), ("samples", "runs"), ("runs", "log"), ("log", "health")):
            self.tabifyDockWidget(self.docks[a], self.docks[b])
        # the setup form runs the window's full height; the bottom docks sit under the curves
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.docks["setup"].raise_()
        self.docks["samples"].raise_()

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        slots = dict(start=self.start, pause=self.toggle_pause, stop=self.stop)
        slots.update(save=self.save_checkpoint, live=self.show_live)
        self.toolbar = RunToolbar({**slots, "open_store": self.open_store_dialog})
        self.addToolBar(self.toolbar)
        self.addToolBarBreak()
        self.banner_bar = ConnectionBanner()
        self.addToolBar(self.banner_bar)
        bar = self.toolbar  # the window's controls, by their names
        self.start_action, self.pause_action = bar.start_action, bar.pause_action
        self.stop_action, self.save_action = bar.stop_action, bar.save_action
        self.live_action, self.message = bar.live_action, bar.message
        self.banner = self.banner_bar.label

    def createPopupMenu(self):
        """The toolbars' context menu: the panels and the Run toolbar, not the banner (it
        shows itself while the store has something to say)."""
        menu = super().createPopupMenu()
        menu.removeAction(self.banner_bar.toggleViewAction())
        return menu

    def reset_layout(self) -> None:
        """Every panel back where it was at the first start, shown."""
        self.restoreState(self._first_layout)
        for dock in self.docks.values():
            dock.show()
        self.toolbar.show()
        self.docks["setup"].raise_()
        self.docks["samples"].raise_()

    def _show_last_run(self) -> None:
        """Reopening the studio shows the run it showed last (in this store), if it is there."""
        url, _, run_id = str(self.settings.value(LAST_RUN_KEY, "")).rpartition("|")
        if url != self.db_url or not run_id.isdigit():
            return
        try:
            self.store.run(int(run_id))
        except Exception:  # deleted since, or the store cannot say: show nothing
            return
        self.open_run(int(run_id))

    def _remember_shown(self, run_id: int) -> None:
        self.settings.setValue(LAST_RUN_KEY, f"{self.db_url}|{run_id}")

    def _load_first_recipe(self, recipe: str | None) -> None:
        try:
            self.setup.load_first_recipe(recipe, DEFAULT_RECIPE)
        except ConfigError as exc:
            self._say(str(exc))

    def _recipe_loaded(self, cfg: RunConfig) -> None:
        self.base_cfg = cfg
        self.rewards.set_components(cfg.reward.components, cfg.base_dir)
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
        problem = launch_problem(self.setup.processes_wanted(), cfg) if cfg else ""
        if problem:
            problems, cfg = [*problems, problem], None
        self.config = cfg
        self.config_error = problems[0] if problems else ""
        self._update_controls()
        return cfg

    # --- run controls -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.live_run is not None and self.live_run.running

    def _update_controls(self) -> None:
        run = self.live_run if self.running else None
        self.setup.hold_for_live_run(run)
        self.toolbar.show_state(
            running=run is not None,
            pausable=run is not None and run.can_pause,
            paused=run is not None and run.paused,
            holding=run is not None and run.holding,
            live_elsewhere=run is not None and self.shown_run_id != run.run_id,
            configured=self.config is not None,
            config_error=self.config_error,
        )

    def _live_id(self) -> int | None:
        return self.live_run.run_id if self.live_run is not None else None

    def start(self) -> bool:
        if self.running:
            return False
        cfg = self.revalidate(save_code=True)
        if cfg is None:
            return False
        self.setup.remember_model(cfg.model.name)
        name = default_run_name(cfg, self.setup.run_label())
        self._begin(new_run(self.setup.processes_wanted(), cfg, self.store, name, parent=self))
        return True

    def resume(self, run_id: int, choice: ResumeChoice = AS_STORED) -> None:
        """Carry `run_id` on with `choice`'s settings, or start it over (as the user chose)."""
        if self.running:
            self._say("A run is already training; stop it first")
            return
        if str(self.store.run(run_id).status) in LIVE:
            self._say(f"Run {run_id} is training in another process; it cannot be resumed here")
            return
        processes = self.setup.processes_wanted()
        if choice.restart:
            self._begin(restarted_run(processes, run_id, self.store, choice.overrides, self))
            return
        ckpt = resume_point(self.store, run_id).checkpoint  # the one resume_run verifies
        after = ckpt.step if ckpt else 0
        # the steps up to the checkpoint it resumes from; the live points follow them
        self.live = self._show_stored(run_id, up_to=after)
        self.shown_run_id = self.last_run_id = self.runs.live_run_id = run_id
        self._begin(resumed_run(processes, run_id, self.store, after, self, choice.overrides))

    def _begin(self, run: LiveRun) -> None:
        self.live_run = run
        if run.resume_id is None:
            self.live = RunSeries("live")
            self.dashboard.show_runs([self.live])
            self.samples.clear()
            self.shown_run_id = None
        run.sig_events.connect(self._on_events)
        self.health.follow(run)
        run.sig_created.connect(self._run_created)
        run.sig_ended.connect(self._ended)
        self.status_bar.starting(run.starting_text)
        self.message.clear()
        run.start()
        self._update_controls()

    def toggle_pause(self) -> None:
        run = self.live_run
        if not self.running or not run.can_pause:
            return
        if run.paused:
            if run.resume_id is None:
                self.rewards.components(save=True)  # a fixed reward is re-read from its file
            self._leave_pause()
            self._apply_live_settings()
            run.resume()
        else:
            run.pause()
            self.status_bar.pausing()
        self._update_controls()

    def _leave_pause(self) -> None:
        """The pause's messages (a reward's failure too) belong to it and leave with it."""
        if self.pause_said or self.live_run.holding:
            self._log("info", "Resumed")
        self.pause_said = False
        self.toolbar.clear_message()
        self.rewards.clear_failure()
        self.status_bar.resumed()

    def _apply_live_settings(self) -> None:
        """The settings edited while the run was paused, of those a run can take between
        steps (the others are fixed while it trains), go to it; its change is marked on
        the curves once it has made it. A value that does not pass stays in the form."""
        changes, problems = self.setup.live_hold.take_changes()
        if problems:
            self._say(f"Not changed: {'; '.join(problems)}")
        if changes:
            marks_on(self.dashboard).follow(self.live_run, self.live)
            self.live_run.change_settings(changes)

    def stop(self) -> None:
        if self.running:
            self.toolbar.clear_message()
            self.rewards.clear_failure()
            self.live_run.stop()
            self.status_bar.say(self.live_run.stopping_text)

    def save_checkpoint(self) -> None:
        if self.running and self.live_run.can_pause:
            self.live_run.request_checkpoint()
            self._say("A checkpoint will be saved before the next step", error=False)

    def show_live(self) -> None:
        if self.running:  # a run of several processes too: its follower fills self.live
            self.dashboard.show_runs([self.live])
            self.health.show_live()
            self.samples.clear()
            if self._live_id():
                self.samples.show_stored(self.store, self._live_id())
            self.shown_run_id = self._live_id()
            self._update_controls()

    # --- past runs ----------------------------------------------------------------------

    def _show_stored(self, run_id: int, up_to: int | None = None) -> RunSeries:
        self.samples.show_stored(self.store, run_id, up_to)
        shown = self.dashboard.show_stored(self.store, [run_id], up_to)[0]
        marks_on(self.dashboard).show_stored(self.store, run_id, shown, up_to)
        self.health.show_stored(self.store, run_id, up_to)
        return shown

    def open_run(self, run_id: int) -> None:
        if self.running and run_id == self._live_id():
            self.show_live()
            return
        self._show_stored(run_id)
        self.shown_run_id = run_id
        self._remember_shown(run_id)
        self.statusBar().showMessage(f"Showing run {run_id}", 5000)
        self._update_controls()

    def compare_runs(self, run_ids: list[int]) -> None:
        self.dashboard.show_stored(self.store, run_ids)
        self.health.show_findings([])
        self.shown_run_id = -1
        self._update_controls()

    # --- recipes, layout, closing -------------------------------------------------------

    def _save_recipe(self) -> None:
        cfg = self.revalidate(save_code=True)
        if cfg is None:
            self._say(f"Fix the settings before saving: {self.config_error}")
            return
        path = self.setup.ask_recipe_path()
        if path is not None:
            self.save_recipe_to(path, cfg)

    def save_recipe_to(self, path: Path, cfg: RunConfig) -> None:
        save_config(with_absolute_paths(cfg), path)
        self.setup.refresh_recipes()
        self.statusBar().showMessage(f"Saved recipe {path}", 5000)

    def closeEvent(self, event) -> None:
        if self.running:
            answer = QMessageBox.question(
                self,
                "A run is training",
                stop_question(self.store, self._live_id()),
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.No,  # a stray Enter keeps it training
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
        """Stop the run and wait until it has ended, keeping the window painted meanwhile."""
        return self.live_run is None or self.live_run.stop_and_wait(timeout_s)


FIRST_SIZE = (1500, 950)
LEFT_DOCK_WIDTH = (320, 380)  # px: the form's labels and fields, no more
BOTTOM_DOCK_SHARE = 0.28  # of the window's height; the curves get the rest


def restore_layout(window: QMainWindow) -> None:
    """The window's size and docks as the user left them (or a first size that fits the
    screen, with most of it for the curves)."""
    geometry = window.settings.value("geometry")
    state = window.settings.value("state")
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        room = window.screen().availableGeometry()
        window.resize(min(FIRST_SIZE[0], room.width()), min(FIRST_SIZE[1], room.height()))
    if state is not None:
        window.restoreState(state)
    else:
        _first_dock_sizes(window)


def stop_question(store, run_id: int | None) -> str:
    """Closing mid-run: which run stops, and the step its checkpoint keeps."""
    try:
        info = None if run_id is None else store.run(run_id)
    except Exception:  # a store gone away: the window still asks, and still closes
        info = None
    if info is None or info.last_step < 1:
        which = "A run" if info is None else f"Run {info.id} {info.name!r}"
        return f"{which} is starting. Stop it and quit? No step is done yet: nothing is kept."
    return (
        f"Run {info.id} {info.name!r} is training (step {info.last_step} of "
        f"{info.total_steps}).\n\nStop it and quit? It is saved as stopped, with a checkpoint "
        f"at the step it has reached (step {info.last_step} now); Resume carries it on."
    )


def _first_dock_sizes(window: QMainWindow) -> None:
    low, high = LEFT_DOCK_WIDTH
    left = min(high, max(low, window.width() // 4))
    window.resizeDocks([window.docks["setup"]], [left], Qt.Horizontal)
    bottom = int(window.height() * BOTTOM_DOCK_SHARE)
    window.resizeDocks([window.docks["samples"]], [bottom], Qt.Vertical)
