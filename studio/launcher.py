"""`rlstudio`: with no command (or `studio`) it opens the window; any other command
(`train`, `resume`, `runs`, ...) is the headless CLI in `core.cli`, which never loads Qt.
`--db URL` (and the window's `--recipe FILE`) may come before the command or after it:
`rlstudio --db URL runs`, `rlstudio runs --db URL` and `rlstudio --db URL` all work;
`--smoke-test` checks an installation (or a built bundle) end to end and exits;
`torchrun ...` is torch's launcher, for the studio's multi-process runs in a frozen app."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # reward workers are spawned: a frozen app must not relaunch
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--smoke-test"]:  # the built bundle's self-check (`make package-test`)
        from studio.smoke import main as smoke_main

        return smoke_main(argv[1:])
    if argv[:1] == ["torchrun"]:  # a frozen app has no `python -m torch.distributed.run`
        from torch.distributed.run import main as torchrun_main

        torchrun_main(argv[1:])
        return 0
    at = _command_at(argv)
    if at is None or argv[at] == "studio":
        from studio.app import main as studio_main

        return studio_main(argv if at is None else argv[:at] + argv[at + 1 :])
    from core.cli import main as cli_main

    return cli_main(argv)  # its parser takes `--db URL` before the command too


# The window's options that may come before a command; each takes a value.
_LEADING_OPTIONS = ("--db", "--recipe")


def _command_at(argv: list[str]) -> int | None:
    """Where the first word that is not a leading option or its value is (None: none)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _LEADING_OPTIONS:
            i += 2
        elif word.startswith(tuple(f"{option}=" for option in _LEADING_OPTIONS)):
            i += 1
        else:
            return i
    return None


if __name__ == "__main__":
    raise SystemExit(main())
