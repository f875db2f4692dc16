"""The headless command line: `rlstudio train ...` and `python -m core.cli ...`."""

from core.cli.main import EXIT_BAD_INPUT, build_parser, main

__all__ = ["EXIT_BAD_INPUT", "build_parser", "main"]
