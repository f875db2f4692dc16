"""What a TRL user brings, through `rlstudio train` as they run it: a reward written as
TRL's docs write it (named in the recipe), chat prompts with a message-list reward,
`datasets` folders and parquet files with a column the reward reads, and a reward whose
signature cannot work (refused before any run row exists)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from core.cli.main import main
from core.store import RunStatus, Store


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def recipe(tmp_path: Path, prompts: str, reward_params: str, extra: str = "") -> Path:
    """A GRPO recipe on tiny-random: 2 prompts x 2 completions per step, 2 steps."""
    path = tmp_path / "recipe.toml"
    path.write_text(
        textwrap.dedent(f"""
        [model]
        name = "tiny-random"
        [data]
        prompts = "{prompts}"
        heldout_fraction = 0.0
        {extra}
        [generation]
        max_new_tokens = 6
        [algorithm]
        name = "grpo"
        group_size = 2
        epochs = 1
        minibatches = 1
        [[reward.components]]
        kind = "python"
        params = {reward_params}
        [training]
        steps = 2
        batch_size = 2
        checkpoint_every = 0
        """)
    )
    return path


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def trained(db: str, recipe_path: Path) -> list:
    """Train the recipe; the completed run's stored samples."""
    assert main(["--db", db, "train", str(recipe_path)]) == 0
    with Store(db) as store:
        (run,) = store.runs()
        assert run.status == RunStatus.COMPLETED and run.last_step == 2
        return store.samples(run.id, limit=100)


def test_a_reward_written_as_trls_docs_show_it_trains(db, tmp_path):
    write(
        tmp_path / "rewards.py",
        """
        def reward_len(completions, **kwargs):
            assert len(kwargs["completion_ids"]) == len(completions)
            assert all(isinstance(ids, list) for ids in kwargs["completion_ids"])
            return [-abs(20 - len(c)) for c in completions]
        """,
    )
    (tmp_path / "p.txt").write_text("Once upon a time\nThe sea was\n")
    samples = trained(
        db, recipe(tmp_path, "p.txt", '{ path = "rewards.py", function = "reward_len" }')
    )
    assert samples
    for s in samples:
        assert s.components["rewards"] == -abs(20 - len(s.completion))


def test_chat_prompts_reach_the_reward_as_message_lists(db, tmp_path):
    rows = [
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}]}
        for q in ("Name a colour.", "Name a fruit.")
    ]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write(
        tmp_path / "chat_reward.py",
        """
        def reward(prompts, completions, **kwargs):
            assert prompts[0][-1]["role"] == "user", prompts[0]
            assert completions[0][0]["role"] == "assistant", completions[0]
            return [float(len(completion[0]["content"])) for completion in completions]
        """,
    )
    samples = trained(db, recipe(tmp_path, "chat.jsonl", '{ path = "chat_reward.py" }'))
    for s in samples:
        assert s.components["chat_reward"] == float(len(s.completion))
        assert s.prompt in (
            "system: Be brief.\nuser: Name a colour.",
            "system: Be brief.\nuser: Name a fruit.",
        )


SOLUTION_REWARD = """
def reward(completions, solution, **kwargs):
    # TRL's accuracy-style reward: reads the data set's own column
    return [1.0 if s in c else -len(s) / 10 for c, s in zip(completions, solution)]
"""


def test_a_save_to_disk_folder_and_a_parquet_file_feed_their_columns_to_the_reward(db, tmp_path):
    import datasets

    rows = [{"prompt": "Count: 1 2 3", "solution": "4"}, {"prompt": "Say hi", "solution": "hi"}]
    train = datasets.Dataset.from_list(rows)
    test = datasets.Dataset.from_list([{"prompt": "held", "solution": "x"}])
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "saved"))
    train.to_parquet(str(tmp_path / "set.parquet"))
    write(tmp_path / "acc.py", SOLUTION_REWARD)
    samples = trained(db, recipe(tmp_path, "saved", '{ path = "acc.py" }'))
    solutions = {r["prompt"]: r["solution"] for r in rows}
    for s in samples:
        want = 1.0 if solutions[s.prompt] in s.completion else -len(solutions[s.prompt]) / 10
        assert s.components["acc"] == want
    db2 = f"sqlite:///{tmp_path / 'parquet.db'}"
    samples = trained(db2, recipe(tmp_path, "set.parquet", '{ path = "acc.py" }'))
    assert {s.prompt for s in samples} <= set(solutions)


def test_a_missing_split_is_one_line_and_no_run(db, tmp_path, capsys):
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "a"}])
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "saved"))
    write(
        tmp_path / "r.py", "def reward(completions, **kw):\n    return [0.0] * len(completions)\n"
    )
    assert main(["--db", db, "train", str(recipe(tmp_path, "saved", '{ path = "r.py" }'))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no split 'train' (its splits: validation)" in err


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("def reward(text):\n    return [0.0]\n", "cannot take a batch"),
        (
            "def reward(completions, answer):\n    return [0.0]\n",
            "missing a required argument: 'answer'",
        ),
    ],
)
def test_a_reward_whose_signature_cannot_work_stops_before_the_run_row(
    db, tmp_path, capsys, source, why
):
    (tmp_path / "p.txt").write_text("Hello\n")
    (tmp_path / "bad_sig.py").write_text(source)
    assert (
        main(["--db", db, "train", str(recipe(tmp_path, "p.txt", '{ path = "bad_sig.py" }'))]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "bad_sig.py" in err and why in err, err
    with Store(db) as store:
        assert store.runs() == []


def test_a_function_the_file_does_not_define_names_the_one_it_does(db, tmp_path, capsys):
    (tmp_path / "p.txt").write_text("Hello\n")
    (tmp_path / "lens.py").write_text("def reward_len(completions, **kw):\n    return [0.0]\n")
    assert main(["--db", db, "train", str(recipe(tmp_path, "p.txt", '{ path = "lens.py" }'))]) == 2
    err = capsys.readouterr().err.strip()
    assert "'reward' is missing" in err and 'function = "reward_len"' in err, err
