"""Held-out evaluation: during a run (steps 0 and the last) and `rlstudio eval` afterwards."""

from __future__ import annotations

import json

import pytest

from core.cli.main import main
from core.store import Store


def test_evaluation_before_and_after_on_held_out_prompts(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    recipe = tmp_path / "questions.toml"
    recipe.write_text(
        '[model]\nname = "tiny-random"\n[data]\nprompts = "questions"\nheldout_fraction = 0.1\n'
        "[generation]\nmax_new_tokens = 6\n"
        '[[reward.components]]\nkind = "length"\nparams = { target = 20 }\n'
        "[training]\nsteps = 2\nbatch_size = 4\nlearning_rate = 3e-4\n"
    )
    assert main(["--db", db, "train", str(recipe)]) == 0
    with Store(db) as store:
        metrics = store.metrics(1)
    for key in (
        "eval/reward/mean",
        "eval/perplexity",
        "eval/distinct_1",
        "eval/bleu",
        "eval/rouge_l",
        "eval/chrf",
        "eval/kl",
        "eval/reward/length",
    ):
        assert metrics[key].steps.tolist() == [0, 2], key
    assert metrics["eval/kl"].values[0] == pytest.approx(0.0, abs=1e-4)  # untrained = reference
    capsys.readouterr()
    assert main(["--db", db, "eval", "1", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["before"]["eval/perplexity"] > 1
    assert set(table["before"]) == set(table["after"])
