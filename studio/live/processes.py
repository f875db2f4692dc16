"""A run trained by several local processes (one per GPU): `rlstudio train` under torchrun.

The window cannot host the processes in its own thread, so it launches torchrun as a child
process and follows the run through the store (`follow.py`), like a run training on another
machine. The CLI says "run N started" as soon as rank 0 has made the row; that is how the
window learns which run to follow. Stop is SIGTERM to torchrun, which hands it to every
process: they stop together at a step boundary and rank 0 saves a checkpoint. There is no
pause across processes.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment

from core import RunConfig, RunState, Store
from core.config import save_config
from core.data import with_absolute_paths
from core.events import Log, Samples
from core.paths import data_dir
from studio.live.base import LiveRun, RunCreated, RunEnded
from studio.live.follow import RunFollower

STARTED = re.compile(r"^run (\d+) started")
OUTPUT_LINE_LIMIT = 2000  # characters kept of one line of the processes' output


def cli_executable() -> str:
    """The frozen app's command-line executable (on Windows a console twin of the GUI)."""
    exe = Path(sys.executable)
    twin = exe.with_name("rlstudio-cli.exe")
    return str(twin if sys.platform == "win32" and twin.exists() else exe)


def torchrun_command(processes: int, cli_args: list[str]) -> list[str]:
    """The command line that runs `rlstudio CLI_ARGS` as `processes` local processes.

    From a source install it is `python -m torch.distributed.run ... -m core.cli`; a frozen
    app has no `python -m`, so it runs torchrun inside itself (`rlstudio torchrun`) and
    starts itself again as each process (`--no-python`)."""
    launch = ["--standalone", "--nproc_per_node", str(processes)]
    if getattr(sys, "frozen", False):
        exe = cli_executable()
        return [exe, "torchrun", *launch, "--no-python", exe, *cli_args]
    return [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "core.cli", *cli_args]


def launched_recipe(cfg: RunConfig) -> Path:
    """The recipe the processes train, saved with absolute paths under the data folder."""
    recipe = data_dir() / "launched" / f"{time.strftime('%Y%m%d-%H%M%S')}.toml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    save_config(with_absolute_paths(cfg), recipe)
    return recipe


class ProcessesRun(LiveRun):
    """torchrun as a child process: its output arrives line by line (as `Log` events of
    level "processes"), the run's metrics and samples through the store."""

    stopping_text = "Stopping every process at the end of this step..."

    def __init__(
        self,
        processes: int,
        cli_args: list[str],
        store: Store,
        *,
        resume_id: int | None = None,
        after_step: int = 0,  # a resumed run: the steps up to its checkpoint are on screen
        parent: QObject | None = None,
    ) -> None:
        super().__init__(store, resume_id, parent)
        self.processes, self.after_step = processes, after_step
        self.command = torchrun_command(processes, cli_args)
        self.starting_text = f"Starting {processes} processes..."
        self.stopping = False
        self.follower: RunFollower | None = None
        self._last_error = self._cli_error = self._partial = ""
        self.proc = QProcess(self)
        self.proc.setProcessChannelMode(QProcess.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        root = str(Path(__file__).resolve().parents[2])  # `-m core.cli` from a source tree
        env.insert("PYTHONPATH", os.pathsep.join(filter(None, [root, env.value("PYTHONPATH")])))
        self.proc.setProcessEnvironment(env)
        self.proc.readyReadStandardOutput.connect(self._read)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)

    @classmethod
    def train(cls, processes: int, cfg: RunConfig, store: Store, name: str, parent=None):
        """A fresh run of `cfg` (its recipe saved for the processes to read)."""
        args = ["train", str(launched_recipe(cfg)), "--db", store.url, "--name", name]
        return cls(processes, args, store, parent=parent)

    @classmethod
    def carry_on(
        cls, processes: int, run_id: int, store: Store, after_step: int, overrides, parent=None
    ):
        """The stored run `run_id`, resumed from its newest checkpoint (`after_step`), with
        the changed settings `overrides`."""
        args = ["resume", str(run_id), "--db", store.url, *_set_args(overrides)]
        return cls(processes, args, store, resume_id=run_id, after_step=after_step, parent=parent)

    @classmethod
    def start_over(cls, processes: int, run_id: int, store: Store, overrides, parent=None):
        """Run `run_id`'s settings trained again as a new run linked to it."""
        args = ["resume", str(run_id), "--db", store.url, "--from-scratch"]
        return cls(processes, [*args, *_set_args(overrides)], store, parent=parent)

    def start(self) -> None:
        self.started = True
        self.sig_events.emit([Log("info", "launching: " + shlex.join(self.command))])
        self.proc.start(self.command[0], self.command[1:])
        if self.resume_id is not None:
            self._created(self.resume_id)

    def stop(self) -> None:
        """SIGTERM to torchrun: every process stops at the same step, with a checkpoint."""
        if self.proc.state() != QProcess.NotRunning:
            self.stopping = True
            self.proc.terminate()

    def _wait_a_little(self) -> None:
        self.proc.waitForFinished(50)

    def _created(self, run_id: int) -> None:
        super()._created(run_id)
        self.follower = RunFollower(self.store, run_id, self.after_step, self)
        self.follower.sig_metrics.connect(self.sig_events.emit)
        self.follower.sig_samples.connect(
            lambda rows: self.sig_events.emit([Samples(rows[-1].step, tuple(rows))])
        )
        self.follower.start()

    def _read(self) -> None:
        text = self._partial + bytes(self.proc.readAllStandardOutput()).decode(errors="replace")
        # The progress line redraws itself with carriage returns: keep its last state.
        *lines, self._partial = text.replace("\r\n", "\n").split("\n")
        out: list = []
        for line in lines:
            line = line.rsplit("\r", 1)[-1].rstrip()[:OUTPUT_LINE_LIMIT]
            if not line:
                continue
            m = STARTED.match(line)
            if m and self.run_id is None and not any(isinstance(o, RunCreated) for o in out):
                out.append(RunCreated(int(m.group(1))))
            # The CLI's own one-line reason beats torchrun's report that a child failed.
            if line.startswith("rlstudio: ") and not self._cli_error:
                self._cli_error = line.removeprefix("rlstudio: ")
            elif "Error" in line:
                self._last_error = line
            out.append(Log("processes", line))
        self._hand_on(out)

    def _finished(self, code: int, _status) -> None:
        if self._partial.strip():
            self.sig_events.emit([Log("processes", self._partial.strip()[:OUTPUT_LINE_LIMIT])])
            self._partial = ""
        self._over(code, "" if code == 0 else self._cli_error or self._last_error)

    def _error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self._last_error = f"could not start {self.command[0]}: {self.proc.errorString()}"
            self._over(-1, self._last_error)

    def _over(self, code: int, error: str) -> None:
        if self.ended:
            return
        if self.follower is not None:  # the last steps, while the run still counts as live
            self.follower.stop()
            self.follower.poll(final=True)
            self.follower = None
        state = RunState.FAILED
        if self.run_id is not None and (code == 0 or self.stopping):
            try:
                state = str(self.store.run(self.run_id).status)
            except Exception:  # the store is away: the exit code is all there is
                state = RunState.COMPLETED if code == 0 else RunState.STOPPED
        ok = state in (RunState.COMPLETED, RunState.STOPPED)
        self._end(RunEnded(self.run_id, state, "" if ok else error or f"torchrun exited {code}"))


def _set_args(overrides: dict) -> list[str]:
    """`--set key=value` for each changed setting, as `rlstudio resume` takes them."""
    return [a for key, value in overrides.items() for a in ("--set", f"{key}={value!r}")]
