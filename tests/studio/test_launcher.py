"""`rlstudio` through its installed console script (`studio.launcher:main`), in every form
the README shows: the options may come before the command or after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.helpers import ROOT, TINY_RECIPE


def _script() -> list[str]:
    """The installed `rlstudio` script where there is one, else the function it calls."""
    installed = Path(sys.executable).with_name("rlstudio")
    if installed.is_file():
        return [sys.executable, str(installed)]
    return [sys.executable, "-c", "import sys; from studio.launcher import main; sys.exit(main())"]


def rlstudio(*args: str, no_display: bool = False) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if no_display:  # so that a form meant for the window says so instead of opening it
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
            env.pop(name, None)
    return subprocess.run(
        [*_script(), *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


def test_every_cli_form_of_the_readme_through_the_installed_script(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    trained = rlstudio("train", str(TINY_RECIPE), "--steps", "1", "--name", "a", "--db", db)
    assert trained.returncode == 0, trained.stderr
    assert "run 1 completed: 1 steps" in trained.stdout
    trained = rlstudio("--db", db, "train", str(TINY_RECIPE), "--steps", "1", "--name", "b")
    assert trained.returncode == 0, trained.stderr
    for args in (
        ["--db", db, "runs", "--json"],  # the README's `rlstudio --db URL runs`
        ["runs", "--db", db, "--json"],
        [f"--db={db}", "runs", "--json"],
    ):
        listed = rlstudio(*args)
        assert listed.returncode == 0, (args, listed.stderr)
        assert [r["name"] for r in json.loads(listed.stdout)] == ["b", "a"], args
    shown = rlstudio("--db", db, "runs")
    assert shown.returncode == 0 and "completed" in shown.stdout, shown.stderr


def test_help_and_a_mistyped_command_are_the_cli_s():
    helped = rlstudio("--help")
    assert helped.returncode == 0 and "train" in helped.stdout, helped.stderr
    wrong = rlstudio("--db", "sqlite://", "rnus")
    assert wrong.returncode == 2
    assert (
        wrong.stderr.strip().splitlines() == [wrong.stderr.strip()]
        and "invalid choice: 'rnus'" in wrong.stderr
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="would open the window")
@pytest.mark.parametrize(
    "args",
    [[], ["--db", "sqlite://"], ["--db", "sqlite://", "studio"], ["studio", "--db", "sqlite://"]],
)
def test_the_window_forms_reach_the_studio(args):
    """With no display the studio says so (exit 2) rather than opening a window."""
    done = rlstudio(*args, no_display=True)
    assert done.returncode == 2, done.stderr
    assert "no display to open the studio on" in done.stderr, done.stderr
