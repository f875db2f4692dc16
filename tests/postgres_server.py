"""A throwaway PostgreSQL server for tests: initdb into a temp folder, pg_ctl on loopback (as
`nobody` when the tests run as root, since initdb refuses root); stop() and start() again."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bindir() -> Path | None:
    candidates = [os.environ.get("RLSTUDIO_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl on 127.0.0.1:port, trust auth, fsync off; stop() and start() again."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="rlstudio-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "nobody" if os.geteuid() == 0 else None  # initdb refuses to run as root
        if self.user:
            shutil.chown(self.folder, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", "rlstudio", "--auth=trust", "-E", "UTF8")
        self.url = f"postgresql+psycopg://rlstudio@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            user=self.user,
            cwd=self.folder,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options,
                  "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def running_server() -> Iterator[PostgresServer]:
    """Body of a `postgres` fixture: a started server, removed afterwards (skips without one)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql "
            "(or set RLSTUDIO_PG_BIN)"
        )
    server = PostgresServer(bindir)
    yield server
    server.remove()
