from __future__ import annotations

import json

import pytest

from core.config import DataConfig
from core.data import DataError, PromptSampler, bundled_prompt_sets, format_prompt, load_prompts


def test_three_bundled_prompt_sets_of_real_prompts():
    sets = bundled_prompt_sets()
    assert {"story_openings", "questions", "instructions"} <= set(sets)
    for name in ("story_openings", "questions", "instructions"):
        ps = load_prompts(DataConfig(prompts=name))
        assert len(ps) >= 40
        assert len(set(ps.prompts)) == len(ps)
    questions = load_prompts(DataConfig(prompts="questions"))
    assert all(questions.columns["reference"])  # the reference answers travel as a column


def test_user_files_jsonl_csv_txt(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"prompt": "Hi", "label": 1}) + "\n\n" + json.dumps({"prompt": "Yo", "label": 2})
    )
    (tmp_path / "b.csv").write_text("question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n")
    (tmp_path / "c.txt").write_text("first line\n\nsecond line\n")
    a = load_prompts(DataConfig(prompts="a.jsonl"), base_dir=tmp_path)
    assert a.prompts == ("Hi", "Yo") and a.columns["label"] == (1, 2)
    b = load_prompts(DataConfig(prompts=str(tmp_path / "b.csv"), prompt_column="question"))
    assert b.prompts[1] == "Capital of France?" and b.columns["answer"] == ("4", "Paris")
    c = load_prompts(DataConfig(prompts=str(tmp_path / "c.txt")))
    assert c.prompts == ("first line", "second line")


def test_files_with_a_byte_order_mark_as_excel_and_notepad_write_them(tmp_path):
    """The BOM is not part of the first column's name, nor of the first prompt."""
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbfprompt,answer\r\nWhat is 2+2?,4\r\n")
    (tmp_path / "a.jsonl").write_text('{"prompt": "Hi"}\n', encoding="utf-8-sig")
    (tmp_path / "c.txt").write_text("first line\n", encoding="utf-8-sig")
    csv_set = load_prompts(DataConfig(prompts="excel.csv"), base_dir=tmp_path)
    assert csv_set.prompts == ("What is 2+2?",) and csv_set.columns == {"answer": ("4",)}
    assert load_prompts(DataConfig(prompts="a.jsonl"), base_dir=tmp_path).prompts == ("Hi",)
    txt = load_prompts(DataConfig(prompts="c.txt"), base_dir=tmp_path)
    assert txt.prompts == ("first line",)


def test_bad_prompt_files_say_what_and_where(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_prompts(DataConfig(prompts=str(empty)))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "ok"}\n{"prompt": oops}\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_prompts(DataConfig(prompts=str(broken)))
    wrong_col = tmp_path / "col.jsonl"
    wrong_col.write_text('{"text": "hello"}\n')
    with pytest.raises(DataError, match="no text in column 'prompt' \\(columns: text\\)"):
        load_prompts(DataConfig(prompts=str(wrong_col)))
    with pytest.raises(DataError, match="prompt set not found: nowhere.jsonl"):
        load_prompts(DataConfig(prompts="nowhere.jsonl"))
    odd = tmp_path / "x.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unsupported prompt file type .xlsx"):
        load_prompts(DataConfig(prompts=str(odd)))
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("x")
    with pytest.raises(DataError, match="x.parquet: not a readable parquet file"):
        load_prompts(DataConfig(prompts=str(not_parquet)))


def test_sampler_is_seeded_covers_every_prompt_per_pass_and_resumes_anywhere():
    sampler = PromptSampler(size=10, batch_size=4, seed=3, shuffle=True)
    first_pass = sampler.indices(1) + sampler.indices(2) + sampler.indices(3)[:2]
    assert sorted(first_pass) == list(range(10))
    again = PromptSampler(size=10, batch_size=4, seed=3, shuffle=True)
    assert again.indices(7) == sampler.indices(7)  # no loader state needed to resume
    assert PromptSampler(10, 4, seed=4, shuffle=True).indices(1) != sampler.indices(1)
    assert PromptSampler(3, 4, 0, shuffle=False).indices(1) == [0, 1, 2, 0]


class _ChatTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return f"<user>{messages[0]['content']}</user><assistant>"


def test_chat_template_applies_for_instruct_models_only_when_wanted():
    tok = _ChatTokenizer()
    assert format_prompt(tok, "hi", "auto") == "<user>hi</user><assistant>"
    assert format_prompt(tok, "hi", "off") == "hi"

    class Plain:
        chat_template = None

    assert format_prompt(Plain(), "hi", "auto") == "hi"
    with pytest.raises(DataError, match="no chat template"):
        format_prompt(Plain(), "hi", "on")


def test_with_absolute_paths_makes_a_recipe_portable(tmp_path):
    import dataclasses

    from core.config import IlqlConfig, RewardComponentConfig, RewardConfig, RunConfig
    from core.data import with_absolute_paths

    python = RewardComponentConfig("python", 1.0, "mine", {"path": "rewards/mine.py"})
    builtin = RewardComponentConfig("length", 1.0, "", {"target": 3})
    cfg = dataclasses.replace(
        RunConfig(),
        base_dir=str(tmp_path),
        data=DataConfig(prompts="prompts.jsonl"),
        ilql=IlqlConfig(dataset="rated.jsonl"),
        reward=RewardConfig(components=(python, builtin)),
    )
    out = with_absolute_paths(cfg)
    assert out.data.prompts == str((tmp_path / "prompts.jsonl").resolve())
    assert out.ilql.dataset == str((tmp_path / "rated.jsonl").resolve())
    assert out.reward.components[0].params["path"] == str((tmp_path / "rewards/mine.py").resolve())
    assert out.reward.components[1] == builtin
    bundled = dataclasses.replace(cfg, data=DataConfig(prompts="questions"))
    assert with_absolute_paths(bundled).data.prompts == "questions"  # a bundled set's name


def test_chat_prompts_go_to_the_template_as_they_are_and_show_as_text(tmp_path):
    rows = [
        {"prompt": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"}]},
        {"prompt": [{"role": "user", "content": "Bye"}], "answer": "ciao"},
    ]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    chats = load_prompts(DataConfig(prompts="chat.jsonl"), base_dir=tmp_path)
    assert chats.prompts == ("system: Terse.\nuser: Hi", "Bye")
    assert chats.columns == {"answer": (None, "ciao")}
    prompts, columns = chats.batch([1, 0])
    assert prompts == [rows[1]["prompt"], rows[0]["prompt"]] and columns["answer"] == ["ciao", None]

    class Recording:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            self.seen = messages
            return "templated"

    tok = Recording()
    assert format_prompt(tok, prompts[1], "auto") == "templated" and tok.seen == rows[0]["prompt"]

    class Plain:
        chat_template = None

    assert format_prompt(Plain(), prompts[1], "auto") == "system: Terse.\nuser: Hi\nassistant:"


def test_json_arrays_and_bad_chats_say_what_is_wrong(tmp_path):
    rows = [{"prompt": "one", "k": 1}, {"prompt": "two", "k": 2}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    loaded = load_prompts(DataConfig(prompts="a.json"), base_dir=tmp_path)
    assert loaded.prompts == ("one", "two") and loaded.columns == {"k": (1, 2)}
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"prompt": "text"}\n{"prompt": [{"role": "user", "content": "x"}]}\n')
    with pytest.raises(DataError, match=r"mixes text \(row 1\) and chat messages \(row 2\)"):
        load_prompts(DataConfig(prompts=str(mixed)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": [{"role": "user"}]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl row 1: message 0 of column 'prompt' is not"):
        load_prompts(DataConfig(prompts=str(bad)))
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not one saved with Dataset.save_to_disk"):
        load_prompts(DataConfig(prompts=str(tmp_path / "folder")))
