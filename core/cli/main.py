"""`rlstudio`: the headless front door to the same engine the studio drives.

Bad input exits with status 2 and one line on stderr; a crash during a run marks the
run failed (with the message) and exits with status 1.

`train` and `resume` also run as several processes under `torchrun --nproc_per_node N`
or `accelerate launch`: rank 0 alone opens the store and prints progress.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, like every other bad input
        print(f"rlstudio: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from core import __version__

    parser = _Parser(prog="rlstudio", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rlstudio {__version__}")
    parser.add_argument(
        "--db", help="SQLAlchemy URL of the store (default: SQLite in the user data folder)"
    )
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("train", help="train from a recipe (TOML or YAML)")
    p.add_argument("recipe", help="recipe .toml or .yaml (see assets/recipes/)")
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help="override training.steps")
    p.add_argument("--model", help="override model.name (a name, folder or .gguf file)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set training.learning_rate=3e-5",
    )
    p.add_argument("--name", help="run name in the store")

    p = sub.add_parser("resume", help="carry a run on from its last checkpoint")
    p.add_argument("run_id", type=int)
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help="new total number of steps")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting that may change mid-run, e.g. --set training.learning_rate=1e-5",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="train the run's settings again from step 0 as a new run (the old one is kept)",
    )
    p.add_argument("--name", help="with --from-scratch: the new run's name")

    p = sub.add_parser("delete", help="delete a run, what it recorded and its checkpoints")
    p.add_argument("run_id", type=int)
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--yes", action="store_true", help="do it (without it: say what would go)")

    p = sub.add_parser("runs", help="list the runs in the store")
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "eval", help="evaluate a run's start and last checkpoint on held-out prompts"
    )
    p.add_argument("run_id", type=int)
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("rate", help="sample and score completions: a rated data set for ILQL")
    p.add_argument("recipe", help="recipe .toml: its model, prompts, generation and reward")
    p.add_argument("--out", required=True, help="output .jsonl")
    p.add_argument("--per-prompt", type=int, default=1, help="completions per prompt")

    _add_output_commands(sub)
    return parser


def _add_output_commands(sub) -> None:
    """`metrics` and `export`: what a run leaves, out of the store."""
    p = sub.add_parser("metrics", help="print a run's metrics (a summary, CSV or JSON)")
    p.add_argument("run_id", type=int)
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_const", const="csv", dest="form", help="as CSV")
    form.add_argument("--json", action="store_const", const="json", dest="form", help="as JSON")
    p.add_argument("--wide", action="store_true", help="one row per step, a column per key")

    p = sub.add_parser("export", help="write a run's model: transformers, GGUF or its adapter")
    p.add_argument("run_id", type=int)
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format",
        choices=("hf", "gguf", "adapter"),
        default="hf",
        help="hf: a transformers folder (default); gguf: a .gguf llama.cpp reads; "
        "adapter: a LoRA run's peft adapter",
    )
    p.add_argument(
        "--outtype",
        choices=("f32", "f16", "bf16", "q8_0"),
        default="f16",
        help="with --format gguf: the weights' type (llama.cpp's converter's names)",
    )

    p = sub.add_parser("import-trl", help="a recipe from a TRL GRPOConfig / RLOOConfig YAML")
    p.add_argument("config", help="the TRL config (.yaml, as config.to_dict() or a TRL script's)")
    p.add_argument("--out", required=True, help="the recipe to write (.toml, or .yaml)")
    p.add_argument("--trainer", choices=("grpo", "rloo"), default="grpo", help="TRL's trainer")
    p.add_argument("--prompts", help="data.prompts: a bundled name, a file or a saved folder")
    p.add_argument("--reward", help="a reward file, FILE.py or FILE.py:FUNCTION")

    from core.cli.doctor import add_parser as add_doctor

    add_doctor(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        with _quit_on_sigterm():
            code = _command(args)
            sys.stdout.flush()  # a reader that went away (`| head`) shows here, not at exit
            return code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt as exc:  # also while starting up: one line, no traceback
        return _interrupted(args, exc)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A renamed setting is one plain line; other warnings print as Python prints them."""
    from core.config import RenamedSetting

    out = file or sys.stderr
    if issubclass(category, RenamedSetting):
        out.write(f"note: {message}\n")
    else:
        out.write(warnings.formatwarning(message, category, filename, lineno, line))


def _reader_gone() -> int:
    """What we print has nowhere to go (`rlstudio runs --json | head`): that is the
    reader's choice, not an error. Quiet, as `ls | head` is: the rest goes to /dev/null
    so the interpreter's last flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


@contextlib.contextmanager
def _quit_on_sigterm():
    """Until a run's own handler takes over, SIGTERM quits as Ctrl+C does: through the
    `finally`s and exit handlers (a reward worker started to check the recipe is stopped)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def quit_now(_signum, _frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, quit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _command(args) -> int:
    _quiet_libraries()
    if args.command is None:
        return _default_demo(args)
    from core.errors import USER_ERRORS
    from core.parallel.distributed import session
    from core.store import StoreUnavailable

    try:
        with session():
            return {
                "train": _train,
                "resume": _resume,
                "delete": _delete,
                "runs": _runs,
                "metrics": _metrics,
                "eval": _eval,
                "rate": _rate,
                "export": _export,
                "import-trl": _import_trl,
                "doctor": _doctor,
            }[args.command](args)
    except (*USER_ERRORS, StoreUnavailable) as exc:
        print(f"{_who()}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        raise  # main() says nothing of it
    except Exception as exc:  # a crash: the run is already marked failed with this message
        traceback.print_exc()
        print(f"{_who()}: run failed: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _interrupted(args, exc: KeyboardInterrupt) -> int:
    """A signal that quits at once (a second one, or one before the run's handler was set):
    which signal, and whether there is a run to carry on."""
    how = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "Ctrl+C"
    run_id = getattr(args, "run_id", None) if args.command in ("train", "resume") else None
    if run_id is not None:
        print(
            f"{_who()}: stopped ({how}); `rlstudio resume {run_id}` carries the run on",
            file=sys.stderr,
        )
    else:
        print(f"{_who()}: stopped ({how})", file=sys.stderr)
    return 128 + (signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)


def _who() -> str:
    """`rlstudio`, or `rlstudio[rank N]` for the other processes of a launch: when rank 0
    fails, theirs is only the echo (a closed connection), and rank 0's line is the reason."""
    rank = int(os.environ.get("RANK", "0") or 0)
    return f"rlstudio[rank {rank}]" if rank else "rlstudio"


def _one_line(exc: BaseException) -> str:
    """KeyError's str() quotes its message, so read the message itself."""
    text = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    text = text if isinstance(text, str) else str(exc)  # OSError's first arg is its errno
    return " ".join(text.split())


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _store(args):
    """The store named by --db; with several processes, only rank 0's (the others: None).
    A server that cannot be reached, or a driver that is missing, is one clear line."""
    from sqlalchemy.exc import DBAPIError, NoSuchModuleError

    from core.parallel.distributed import is_main
    from core.store import Store, StoreUnavailable
    from core.store.engine import shown_url

    if not is_main():
        return None
    url = _db_url(getattr(args, "db_sub", None) or args.db, creates=args.command == "train")
    try:
        store = Store(url)
    except (DBAPIError, NoSuchModuleError, ModuleNotFoundError) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        where = shown_url(url) if url else "the default store"
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and "psycopg" in str(exc):
            hint = ' (install the driver: pip install "rlstudio[postgres]")'
        raise StoreUnavailable(f"cannot open the store at {where}: {reason}{hint}") from exc
    if store.backup is not None:
        print(
            f"rlstudio: upgraded the database for this version; the old copy is {store.backup}",
            file=sys.stderr,
        )
    return store


def _db_url(given: str | None, *, creates: bool) -> str | None:
    """--db as a URL: a plain path is a SQLite file. Only `train` makes a new database;
    the other commands refuse a file that is not there (a mistyped path) with one line."""
    from core.store import StoreUnavailable

    if not given:
        return None
    typed = given
    if "://" not in given:
        given = f"sqlite:///{Path(given).expanduser().resolve().as_posix()}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(given)
    except ArgumentError:
        raise StoreUnavailable(
            f"--db {given!r} is neither a database URL (sqlite:///path/runs.db, "
            "postgresql://user@host/db) nor a file path"
        ) from None
    path = url.database if url.get_backend_name() == "sqlite" else None
    plain_file = path not in (None, "", ":memory:") and not path.startswith("file:")
    if plain_file and not creates and not Path(path).is_file():
        raise StoreUnavailable(
            f"no database at {path}: check --db (`rlstudio train --db {typed}` makes a new one)"
        )
    return given


def _train(args) -> int:
    from core.config import load_config, parse_override, with_overrides
    from core.runner import default_run_name, preflight, start_run

    cfg = load_config(args.recipe)
    overrides = dict(parse_override(s) for s in args.set)
    if args.steps is not None:
        overrides["training.steps"] = args.steps
    if args.model:  # a path typed on the command line is relative to the shell's folder
        typed = Path(args.model).expanduser()
        overrides["model.name"] = str(typed.resolve()) if typed.exists() else args.model
    if overrides:
        cfg = with_overrides(cfg, overrides)
    from core.parallel.distributed import broadcast, is_main

    # Rank 0 checks (and downloads or converts the model once); the others take its answer.
    cfg = broadcast(preflight(cfg, progress=_say) if is_main() else None)
    store = _store(args)
    with _progress(cfg.training.steps) as bar, _stop_on_signals() as control:
        run_id = start_run(
            cfg,
            store,
            name=args.name or default_run_name(cfg, args.recipe),
            control=control,
            on_event=bar.on_event,
            progress=bar.say,
            on_run_id=lambda run_id: _started(args, run_id),
        )
    if store is not None:
        info = store.run(run_id)
        print(f"run {run_id} {info.status}: {info.last_step} steps, stored in {store.url}")
    return 0


def _started(args, run_id: int) -> None:
    args.run_id = run_id  # a second Ctrl+C names it
    print(f"run {run_id} started", flush=True)  # the studio follows a run it launched so


@contextlib.contextmanager
def _progress(steps: int):
    """The console progress bar; with several processes, rank 0's only."""
    from core.cli.progress import console_progress
    from core.parallel.distributed import is_main

    if not is_main():
        yield _Quiet()
        return
    with console_progress(steps) as bar:
        yield bar


class _Quiet:
    def on_event(self, event) -> None:
        pass

    def say(self, message: str) -> None:
        pass


def _resume(args) -> int:
    from core.config import parse_override
    from core.parallel.distributed import broadcast
    from core.runner import restart_run, resume_run

    overrides = dict(parse_override(s) for s in args.set)
    if args.steps is not None:
        overrides["training.steps"] = args.steps
    store = _store(args)
    info = store.run(args.run_id) if store is not None else None
    total = broadcast(info.total_steps if info is not None else None)
    steps = overrides.get("training.steps", total)
    with _progress(steps) as bar, _stop_on_signals() as control:
        if args.from_scratch:
            run_id = restart_run(
                store,
                args.run_id,
                overrides=overrides,
                name=args.name,
                control=control,
                on_event=bar.on_event,
                progress=bar.say,
                on_run_id=lambda run_id: _started(args, run_id),
            )
        else:
            run_id = resume_run(
                store,
                args.run_id,
                overrides=overrides,
                control=control,
                on_event=bar.on_event,
                progress=bar.say,
            )
    if store is not None:
        info = store.run(run_id)
        print(f"run {run_id} {info.status}: {info.last_step} steps, stored in {store.url}")
    return 0


def _delete(args) -> int:
    from core.runner import checkpoint_root, delete_run

    store = _store(args)
    info = store.run(args.run_id)
    folder = checkpoint_root(store, args.run_id)
    if not args.yes:
        print(
            f"rlstudio: run {info.id} ({info.name!r}, {max(info.last_step, 0)} steps) and its "
            f"checkpoints in {folder} would be deleted; add --yes to delete them",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    removed = delete_run(store, args.run_id)
    where = ", ".join(str(p) for p in removed) or "none on disk"
    print(f"deleted run {info.id} ({info.name!r}) and its checkpoints ({where})")
    return 0


def _runs(args) -> int:
    store = _store(args)
    runs = store.runs()
    if args.json:
        import dataclasses

        print(json.dumps([dataclasses.asdict(r) for r in runs], default=str, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "status", "algorithm", "model", "steps", "reward", "started")
    for r in runs:
        reward = "" if r.last_reward is None else f"{r.last_reward:.3f}"
        started = f"{r.started_at:%Y-%m-%d %H:%M}" if r.started_at else ""
        table.add_row(
            str(r.id),
            r.name,
            r.status,
            r.algorithm,
            r.model,
            f"{max(r.last_step, 0)}/{r.total_steps}",
            reward,
            started,
        )
    Console().print(table)
    return 0


def _metrics(args) -> int:
    from core.cli.metrics import print_metrics

    return print_metrics(_store(args), args.run_id, args.form, args.wide)


def _eval(args) -> int:
    from core.runner import evaluate_run

    results = evaluate_run(_store(args), args.run_id, progress=_say)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "metric", "before", "after", "change", title=f"run {args.run_id}, held-out prompts"
    )
    before, after = results["before"], results["after"]
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        change = f"{a - b:+.4g}" if a is not None and b is not None else ""
        table.add_row(key.removeprefix("eval/"), _fmt(b), _fmt(a), change)
    Console().print(table)
    return 0


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _rate(args) -> int:
    from core.config import load_config
    from core.runner import preflight, rate_completions

    cfg = preflight(load_config(args.recipe), progress=_say)
    n = rate_completions(cfg, Path(args.out), per_prompt=args.per_prompt, progress=_say)
    print(f"wrote {n} rated completions to {args.out}")
    return 0


def _doctor(args) -> int:
    from core.cli.doctor import command

    return command(_store(args), args)


def _export(args) -> int:
    from core.exports import export_run_model

    out, step = export_run_model(
        _store(args), args.run_id, args.out, format=args.format, outtype=args.outtype, say=_say
    )
    print(f"exported run {args.run_id} (step {step}) to {out}")
    return 0


@contextlib.contextmanager
def _stop_on_signals():
    """Ctrl+C or SIGTERM asks the run to stop cleanly (it saves a checkpoint of the last
    finished step and is stored as stopped); a second one quits at once (KeyboardInterrupt
    naming the signal: "Ctrl+C" or "SIGTERM")."""
    from core.control import Control

    control = Control()

    def ask_to_stop(signum, _frame):
        if control.stopped:
            raise KeyboardInterrupt(
                "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name
            )
        print(
            f"\nrlstudio: {signal.Signals(signum).name}: stopping after the current step "
            "(again to quit now)",
            file=sys.stderr,
        )
        control.stop()

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield control
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _default_demo(args) -> int:
    """No command: the window is `rlstudio` with no command (see studio.launcher); here
    the headless CLI lists what it can do."""
    build_parser().print_help(sys.stderr)
    return EXIT_BAD_INPUT


def _import_trl(args) -> int:
    from core.cli.import_trl import import_trl_file, report, write_recipe

    out = Path(args.out)
    imported = import_trl_file(Path(args.config), args.trainer, args.prompts, args.reward, out)
    write_recipe(imported, Path(args.config), out)
    print(report(imported, Path(args.config), out), end="")
    return 0
