"""The language model as a tensor machine: where its weights come from (`sources`), the
device and precision (`device`), forward helpers (`forward`), and the policy with its
reference (`policy`)."""

from core.lm.device import ModelError, autocast, resolve_device, resolve_dtype
from core.lm.forward import entropy_from_logits, logprobs_from_logits
from core.lm.policy import LoadedModels, Policy, Reference, load_models
from core.lm.sources import (
    DEFAULT_MODEL,
    TINY_RANDOM,
    bundled_gguf,
    default_model_dir,
    load_lm,
    load_tokenizer,
    looks_like_path,
    missing_model_path,
    resolve_source,
)

__all__ = [
    "DEFAULT_MODEL",
    "TINY_RANDOM",
    "LoadedModels",
    "ModelError",
    "Policy",
    "Reference",
    "autocast",
    "bundled_gguf",
    "default_model_dir",
    "entropy_from_logits",
    "load_lm",
    "load_models",
    "load_tokenizer",
    "logprobs_from_logits",
    "looks_like_path",
    "missing_model_path",
    "resolve_device",
    "resolve_dtype",
    "resolve_source",
]
