"""The policy (the trained LM plus optional heads: a value head, or the algorithm's own),
LoRA, the frozen reference, and `load_models`, which builds them on the chosen device."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

from core.config import ConfigError, ModelConfig
from core.lm.device import compile_unavailable, resolve_device, resolve_dtype
from core.lm.forward import ResponseOutput, response_outputs
from core.lm.sources import Progress, load_lm
from core.parallel import sharding


class Policy(nn.Module):
    """The trained LM plus optional heads on its last hidden state: a scalar value head
    (PPO, A2C) or an algorithm's own heads (Q-learning's Q and V heads, say)."""

    def __init__(self, lm: nn.Module, value_head: bool, heads: nn.Module | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.heads = heads  # an algorithm's own (see Algorithm.heads_factory)
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
        # Only where a backward follows: a no-grad call (Q-learning's scoring) would compile a
        # second graph for a single cheap forward.
        compiled = self.compiled and torch.is_grad_enabled()
        lm = self._update_lm if compiled else self.lm
        return response_outputs(lm, input_ids, attention_mask, prompt_len, self.v_head, want_hidden)


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
    def model(self):
        """The reference model for a `with` block (with LoRA: the policy, adapter off)."""
        if self.lm is not None:
            yield self.lm
        else:
            with self.policy.lm.disable_adapter():
                yield self.policy.lm

    @torch.no_grad()
    def response_logits(self, input_ids, attention_mask, prompt_len: int) -> torch.Tensor:
        with self.model() as lm:
            return response_outputs(lm, input_ids, attention_mask, prompt_len).logits


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


@contextmanager
def starting_models(models: LoadedModels):
    """The models as they were before any update, for a `with` block: the frozen reference
    stands in as the policy (so the starting model can be evaluated after training began)."""
    with models.reference.model() as lm:
        yield replace(models, policy=Policy(lm, value_head=False))


def load_models(
    cfg: ModelConfig,
    *,
    value_head: bool,
    seed: int = 0,
    progress: Progress | None = None,
    heads: Callable[[int, int], nn.Module] | None = None,
) -> LoadedModels:
    """Policy (+ value head, + LoRA, + the algorithm's `heads(hidden size, vocabulary
    size)`) and reference on the chosen device."""
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
        own = heads(lm.config.hidden_size, lm.config.vocab_size) if heads is not None else None
        policy = Policy(lm, value_head=value_head, heads=own)
    if sharding.requested():
        # FSDP moves each layer's shard to the device as it shards it: the whole model
        # never has to fit there (train() shards it once every rank has the same weights).
        for head in (policy.v_head, policy.heads):
            if head is not None:
                head.to(device)
    else:
        policy.to(device)
    reference = Reference(policy)  # before compiling: a deep copy of the eager model
    if cfg.compile:
        policy.compile_update_forward()
    return LoadedModels(policy, reference, tokenizer, device, dtype, source)
