"""`rlstudio`: with no command (or `studio`) it opens the window; any other command
(`train`, `resume`, `runs`, ...) is the headless CLI in `core.cli`, which never loads Qt;
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
    if not argv or argv[0] == "studio" or argv[0] in ("--db", "--recipe"):
        from studio.app import main as studio_main

        return studio_main(argv[1:] if argv and argv[0] == "studio" else argv)
    from core.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
