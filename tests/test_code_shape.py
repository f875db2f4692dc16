"""The shape issue 17 gave the code, kept: short functions, classes of one job, no import
cycle, ILQL at home. `python .ci/code_shape.py` prints the same figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("code_shape", ROOT / ".ci" / "code_shape.py")
code_shape = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(code_shape)
SHAPE = code_shape.measure()


def test_no_function_is_longer_than_80_lines():
    assert SHAPE["functions_over_80"] == []


def test_no_class_is_longer_than_500_lines_and_the_main_window_stays_under_400():
    assert SHAPE["classes_over_500"] == []
    assert 0 < SHAPE["main_window_lines"] < 400


def test_no_import_cycle_even_through_function_level_imports():
    assert SHAPE["import_cycles"] == []


def test_ilql_lives_in_its_package():
    """At most three files outside core/algorithms and config.py name it."""
    assert len(SHAPE["ilql_files_outside_algorithms"]) <= 3, SHAPE["ilql_files_outside_algorithms"]
