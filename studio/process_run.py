"""A run trained by several local processes (one per GPU): `rlstudio train` under torchrun.

The window cannot host the processes in its own thread, so it launches torchrun as a child
process and follows the run through the store, like a run training on another machine.
The CLI says "run N started" as soon as rank 0 has made the row; that is how the window
learns which run to follow. Stop is SIGTERM to torchrun, which hands it to every process:
they stop together at a step boundary and rank 0 saves a checkpoint.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

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


class ProcessRun(QObject):
    """torchrun as a child process; its output arrives line by line."""

    run_created = Signal(int)
    output = Signal(str)
    finished = Signal(int, str)  # exit code, the last error line (empty when it succeeded)

    def __init__(self, processes: int, cli_args: list[str], parent: QObject | None = None):
        super().__init__(parent)
        self.processes = processes
        self.command = torchrun_command(processes, cli_args)
        self.run_id: int | None = None
        self.stopping = False
        self._last_error = ""
        self._cli_error = ""
        self._partial = ""
        self.proc = QProcess(self)
        self.proc.setProcessChannelMode(QProcess.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        root = str(Path(__file__).resolve().parents[1])  # `-m core.cli` from a source tree
        env.insert("PYTHONPATH", os.pathsep.join(filter(None, [root, env.value("PYTHONPATH")])))
        self.proc.setProcessEnvironment(env)
        self.proc.readyReadStandardOutput.connect(self._read)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)

    def start(self) -> None:
        self.proc.start(self.command[0], self.command[1:])

    def running(self) -> bool:
        return self.proc.state() != QProcess.NotRunning

    def stop(self) -> None:
        """SIGTERM to torchrun: every process stops at the same step, with a checkpoint."""
        if self.running():
            self.stopping = True
            self.proc.terminate()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()

    def _read(self) -> None:
        text = self._partial + bytes(self.proc.readAllStandardOutput()).decode(errors="replace")
        # The progress line redraws itself with carriage returns: keep its last state.
        *lines, self._partial = text.replace("\r\n", "\n").split("\n")
        for line in lines:
            line = line.rsplit("\r", 1)[-1].rstrip()[:OUTPUT_LINE_LIMIT]
            if not line:
                continue
            m = STARTED.match(line)
            if m and self.run_id is None:
                self.run_id = int(m.group(1))
                self.run_created.emit(self.run_id)
            # The CLI's own one-line reason beats torchrun's report that a child failed.
            if line.startswith("rlstudio: ") and not self._cli_error:
                self._cli_error = line.removeprefix("rlstudio: ")
            elif "Error" in line:
                self._last_error = line
            self.output.emit(line)

    def _finished(self, code: int, _status) -> None:
        if self._partial.strip():
            self.output.emit(self._partial.strip()[:OUTPUT_LINE_LIMIT])
            self._partial = ""
        self.finished.emit(code, "" if code == 0 else self._cli_error or self._last_error)

    def _error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self._last_error = f"could not start {self.command[0]}: {self.proc.errorString()}"
            self.finished.emit(-1, self._last_error)
