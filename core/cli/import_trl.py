"""`rlstudio import-trl CONFIG.yaml --out RECIPE.toml`: a recipe from a TRL GRPOConfig or
RLOOConfig (as `config.to_dict()` dumps it, or a TRL script's YAML).

Each TRL name is mapped only to a setting that means the same here; what has no such
setting is listed with the reason, never mapped to a look-alike (TRL's `scale_rewards` is
`algorithm.scale_rewards` here, with TRL's meaning; the running-std divide that name once
meant here is `algorithm.running_std_scaling`).
TRL's defaults stand in for the names the file leaves out, so the recipe trains as TRL
would have (seed 42, a linear schedule, 8 generations for GRPO...).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import (
    YAML_SUFFIXES,
    ConfigError,
    RunConfig,
    from_dict,
    read_recipe_file,
    validate,
)

# TRL's defaults (GRPOConfig / RLOOConfig, over transformers' TrainingArguments) for the
# names this importer reads.
_COMMON_DEFAULTS = {
    "learning_rate": 1e-6,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "steps_per_generation": None,
    "generation_batch_size": None,
    "max_steps": -1,
    "max_completion_length": 256,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "num_iterations": 1,
    "epsilon": 0.2,
    "lr_scheduler_type": "linear",
    "warmup_ratio": 0.0,
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "seed": 42,
    "save_strategy": "steps",
    "save_steps": 500,
}
DEFAULTS = {
    "grpo": {
        **_COMMON_DEFAULTS,
        "num_generations": 8,
        "beta": 0.0,
        "scale_rewards": "group",
        "loss_type": "dapo",
    },
    "rloo": {**_COMMON_DEFAULTS, "num_generations": 2, "beta": 0.05, "normalize_advantages": False},
}

# Names with a value that means "off" in TRL: at that value there is nothing to carry over.
# Another value is a feature this project does not have.
_NO_COUNTERPART: dict[str, tuple[Any, str]] = {
    "delta": (None, "no two-sided GRPO clip here"),
    "sync_ref_model": (False, "the reference model stays frozen here"),
    "min_p": (None, "no min-p sampling here"),
    "repetition_penalty": (
        1.0,
        "no repetition penalty in sampling here (the 'repetition' "
        "reward is a reward, not a sampling setting)",
    ),
    "use_vllm": (False, "generation runs in this process, without vLLM"),
    "reward_weights": (None, "weights belong to each [[reward.components]] here"),
    "multi_objective_aggregation": ("sum_then_normalize", "rewards are summed, then scaled"),
    "num_generations_eval": (None, "evaluation samples one completion per held-out prompt"),
    "generation_kwargs": (None, "no free-form generation arguments here"),
    "reward_clip_range": (None, "clipping here is symmetric: algorithm.reward_clip"),
    "use_liger_kernel": (False, "no Liger kernels here"),
    "adam_beta1": (0.9, "AdamW here keeps betas (0.9, 0.999)"),
    "adam_beta2": (0.999, "AdamW here keeps betas (0.9, 0.999)"),
    "adam_epsilon": (1e-8, "AdamW here keeps eps 1e-8"),
    "adafactor": (False, "the optimiser here is AdamW"),
    "optim": ("adamw_torch", "the optimiser here is AdamW (torch's)"),
}

# TrainingArguments plumbing that changes nothing about what is learned here (bf16 / fp16:
# model.dtype = auto already picks bf16 where the device supports it).
_PLUMBING_NAMES = """
    output_dir overwrite_output_dir logging_dir logging_steps logging_strategy
    logging_first_step report_to run_name push_to_hub hub_model_id hub_strategy
    hub_private_repo hub_token hub_always_push hub_revision log_completions
    num_completions_to_print log_unique_prompts log_level log_level_replica log_on_each_node
    disable_tqdm dataloader_num_workers dataloader_pin_memory dataloader_drop_last
    dataloader_persistent_workers dataloader_prefetch_factor remove_unused_columns
    save_only_model save_safetensors save_on_each_node ddp_find_unused_parameters
    ddp_backend ddp_timeout ddp_broadcast_buffers ddp_bucket_cap_mb do_train do_eval
    do_predict optim_args
    per_device_eval_batch_size eval_strategy eval_steps eval_delay eval_on_start
    eval_accumulation_steps eval_do_concat_batches eval_use_gather_object
    batch_eval_metrics prediction_loss_only include_for_metrics ds3_gather_for_generation
    shuffle_dataset model_init_kwargs disable_dropout cache_implementation
    use_transformers_paged bf16 fp16 tf32 bf16_full_eval fp16_full_eval half_precision_backend
    gradient_checkpointing_kwargs chat_template_kwargs torch_compile torch_compile_backend
    torch_compile_mode torch_empty_cache_steps use_cpu use_mps_device data_seed
    jit_mode_eval local_rank tpu_num_cores debug past_index label_names
    load_best_model_at_end metric_for_best_model greater_is_better ignore_data_skip fsdp
    fsdp_config deepspeed label_smoothing_factor group_by_length length_column_name
    resume_from_checkpoint auto_find_batch_size full_determinism ray_scope
    neftune_noise_alpha include_num_input_tokens_seen include_tokens_per_second
    average_tokens_across_devices restore_callback_states_from_checkpoint
    accelerator_config skip_memory_metrics lr_scheduler_kwargs logging_nan_inf_filter
    trackio_space_id project parallelism_config liger_kernel_config
    use_legacy_prediction_loop
"""
_PLUMBING = set(_PLUMBING_NAMES.split())


@dataclass
class Imported:
    """The recipe's settings and what became of each TRL name."""

    trainer: str
    recipe: dict[str, dict[str, Any]] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def set(self, trl_name: str, value: Any, key: str, ours: Any, note: str = "") -> None:
        section, name = key.split(".")
        self.recipe.setdefault(section, {})[name] = ours
        line = f"{trl_name} = {value!r} -> {key} = {ours!r}"
        self.mapped.append(f"{line} ({note})" if note else line)

    def refuse(self, trl_name: str, value: Any, reason: str) -> None:
        self.not_mapped.append(f"{trl_name} = {value!r}: {reason}")


def import_trl(data: dict[str, Any], trainer: str) -> Imported:
    """Map a TRL config's names onto a recipe's (see the module docstring)."""
    given = dict(data)
    settings = {**DEFAULTS[trainer], **given}
    out = Imported(trainer)
    out.recipe["algorithm"] = {"name": trainer}
    used = _map_sampling(settings, out) | _map_optimiser(settings, out)
    used |= _map_algorithm(settings, out) | _map_geometry(settings, out)
    used |= _map_script(settings, out) | _map_family(settings, out)
    for name, value in given.items():
        if name in used:
            continue
        if name == "optim" and str(value).startswith("adamw"):
            out.ignored.append(name)  # AdamW, as here (torch's, fused or not)
        elif name in _NO_COUNTERPART:
            off, reason = _NO_COUNTERPART[name]
            if value == off or (off is None and not value):
                out.ignored.append(name)
            else:
                out.refuse(name, value, reason)
        elif name in _PLUMBING or name.startswith("vllm_"):  # vLLM's: see use_vllm
            out.ignored.append(name)
        else:
            out.refuse(name, value, "not a name this importer knows")
    return out


def _map_sampling(s: dict, out: Imported) -> set[str]:
    out.set("temperature", s["temperature"], "generation.temperature", float(s["temperature"]))
    out.set("top_p", s["top_p"], "generation.top_p", float(s["top_p"]))
    out.set("top_k", s["top_k"], "generation.top_k", int(s["top_k"] or 0), "0 and None: off")
    length = s["max_completion_length"]
    if length:
        out.set("max_completion_length", length, "generation.max_new_tokens", int(length))
    else:
        out.refuse("max_completion_length", length, "completions need a length limit here")
    if s.get("max_prompt_length"):
        n = int(s["max_prompt_length"])
        out.set("max_prompt_length", n, "data.max_prompt_tokens", n, "cut from the left, as TRL")
    return {"temperature", "top_p", "top_k", "max_completion_length", "max_prompt_length"}


def _map_optimiser(s: dict, out: Imported) -> set[str]:
    out.set("learning_rate", s["learning_rate"], "training.learning_rate", s["learning_rate"])
    out.set("weight_decay", s["weight_decay"], "training.weight_decay", s["weight_decay"])
    out.set("max_grad_norm", s["max_grad_norm"], "training.max_grad_norm", s["max_grad_norm"])
    out.set("seed", s["seed"], "training.seed", int(s["seed"]))
    schedule = s["lr_scheduler_type"]
    if schedule in ("constant", "linear", "cosine"):
        out.set("lr_scheduler_type", schedule, "training.lr_schedule", schedule)
    elif schedule == "constant_with_warmup":
        out.set(
            "lr_scheduler_type",
            schedule,
            "training.lr_schedule",
            "constant",
            "warm-up from warmup_steps / warmup_ratio",
        )
    else:
        out.refuse("lr_scheduler_type", schedule, "schedules here: constant, linear, cosine")
    if s.get("gradient_checkpointing"):
        out.set("gradient_checkpointing", True, "model.gradient_checkpointing", True)
    return {
        "learning_rate",
        "weight_decay",
        "max_grad_norm",
        "seed",
        "lr_scheduler_type",
        "gradient_checkpointing",
    }


def _map_algorithm(s: dict, out: Imported) -> set[str]:
    n = s["num_generations"]
    out.set("num_generations", n, "algorithm.group_size", int(n))
    beta = float(s["beta"])
    if out.trainer == "grpo":
        out.set(
            "beta",
            s["beta"],
            "algorithm.kl_coef",
            beta,
            "fixed (algorithm.adaptive_kl = false), a k3 KL term in the loss, as TRL",
        )
        out.set("epsilon", s["epsilon"], "algorithm.clip_range", float(s["epsilon"]))
        iters = int(s["num_iterations"])
        out.set("num_iterations", iters, "algorithm.epochs", iters, "passes over each batch")
        _map_scale_rewards(s["scale_rewards"], out)
        _map_loss_type(s["loss_type"], out)
    else:
        out.set(
            "beta",
            s["beta"],
            "algorithm.kl_coef",
            beta,
            "fixed (algorithm.adaptive_kl = false), the KL summed over the tokens and taken "
            "from the reward (algorithm.kl_in = reward, kl_estimator = k1), as TRL's RLOO",
        )
        out.recipe["algorithm"].update(kl_in="reward", kl_estimator="k1")
        if int(s["num_iterations"]) != 1:
            out.refuse("num_iterations", s["num_iterations"], "RLOO here takes one pass a batch")
        if s["normalize_advantages"]:
            out.refuse(
                "normalize_advantages",
                True,
                "RLOO here keeps the leave-one-out advantages as they are",
            )
        out.ignored.append("epsilon (one pass: the ratio is 1, nothing to clip)")
    # TRL's beta is a fixed coefficient; ours adapts toward a target unless told not to.
    out.recipe["algorithm"]["adaptive_kl"] = False
    return {
        "num_generations",
        "beta",
        "epsilon",
        "num_iterations",
        "scale_rewards",
        "loss_type",
        "normalize_advantages",
    }


def _map_scale_rewards(value: Any, out: Imported) -> None:
    # TRL's older configs wrote a true/false: true was group scaling.
    ours = {True: "group", False: "none"}.get(value, value) if isinstance(value, bool) else value
    if ours in ("group", "batch", "none"):
        out.set("scale_rewards", value, "algorithm.scale_rewards", ours, "TRL's meaning")
    else:
        out.refuse(
            "scale_rewards", value, "scaling here is by the group's std, the batch's, or none"
        )


def _map_loss_type(value: Any, out: Imported) -> None:
    if value in ("grpo", "bnpo", "dr_grpo", "dapo"):
        out.set("loss_type", value, "algorithm.loss_type", value, "TRL's meaning")
    else:
        out.refuse("loss_type", value, "loss types here: grpo, bnpo, dr_grpo, dapo")


# GRPO's 2025 family, the same names and meanings here; None / the default: nothing to set.
_FAMILY = {
    "epsilon_high": float,
    "importance_sampling_level": str,
    "mask_truncated_completions": bool,
    "top_entropy_quantile": float,
}


def _map_family(s: dict, out: Imported) -> set[str]:
    if out.trainer != "grpo":
        return set()
    for name, kind in _FAMILY.items():
        value = s.get(name)
        if value is None:
            continue
        if name == "importance_sampling_level" and value not in ("token", "sequence"):
            out.refuse(name, value, "ratios here are per token or per sequence (GSPO)")
            continue
        out.set(name, value, f"algorithm.{name}", kind(value))
    return set(_FAMILY)


def _map_geometry(s: dict, out: Imported) -> set[str]:
    """TRL counts completions per device and optimiser steps; a step here is one batch of
    prompts (training.batch_size x group_size completions), split into minibatches that
    are each an optimiser step (one process assumed)."""
    used = {
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "steps_per_generation",
        "generation_batch_size",
        "max_steps",
        "save_steps",
        "save_strategy",
        "save_total_limit",
        "warmup_ratio",
        "warmup_steps",
        "num_train_epochs",  # TRL's count when max_steps is not set: see max_steps
    }
    per_device, accumulate = (
        int(s["per_device_train_batch_size"]),
        int(s["gradient_accumulation_steps"]),
    )
    per_gen = s["steps_per_generation"] or accumulate
    completions = int(s["generation_batch_size"] or per_device * per_gen)
    n = int(s["num_generations"])
    if completions % n:
        out.refuse(
            "per_device_train_batch_size",
            per_device,
            f"{completions} completions per generation are not whole groups of {n}",
        )
        return used
    out.set(
        "per_device_train_batch_size",
        per_device,
        "training.batch_size",
        completions // n,
        f"{completions} completions per generation / num_generations",
    )
    minibatches = max(1, math.ceil(completions / (per_device * accumulate)))
    if out.trainer == "rloo" and minibatches > 1:
        out.refuse("steps_per_generation", per_gen, "RLOO here takes one optimiser step a batch")
        minibatches = 1
    out.set(
        "steps_per_generation",
        per_gen,
        "algorithm.minibatches",
        minibatches,
        "optimiser steps per batch of completions, over gradient_accumulation_steps",
    )
    updates = minibatches * int(out.recipe["algorithm"].get("epochs", 1))
    _map_counts(s, out, updates)
    return used


def _map_counts(s: dict, out: Imported, updates: int) -> None:
    """max_steps, save_steps and warm-up count optimiser steps in TRL: `updates` a step here."""
    steps = None
    if int(s["max_steps"]) > 0:
        steps = max(1, math.ceil(int(s["max_steps"]) / updates))
        out.set(
            "max_steps",
            s["max_steps"],
            "training.steps",
            steps,
            f"{updates} optimiser step(s) each",
        )
    else:
        out.refuse(
            "max_steps",
            s["max_steps"],
            "TRL then counts epochs over the data set (num_train_epochs); set training.steps",
        )
    if s["save_strategy"] == "steps" and int(s["save_steps"]) > 0:
        every = max(1, math.ceil(float(s["save_steps"]) / updates))
        out.set("save_steps", s["save_steps"], "training.checkpoint_every", every)
    if s.get("save_total_limit"):
        out.set(
            "save_total_limit",
            s["save_total_limit"],
            "training.keep_checkpoints",
            int(s["save_total_limit"]),
        )
    warmup = int(s["warmup_steps"] or 0)
    if warmup:
        out.set("warmup_steps", warmup, "training.warmup_steps", math.ceil(warmup / updates))
    elif float(s["warmup_ratio"] or 0) and steps:
        ours = round(float(s["warmup_ratio"]) * steps)
        out.set("warmup_ratio", s["warmup_ratio"], "training.warmup_steps", ours)


def _map_script(s: dict, out: Imported) -> set[str]:
    """The names TRL's example scripts put beside the config (ModelConfig, ScriptArguments)."""
    if s.get("model_name_or_path"):
        out.set(
            "model_name_or_path",
            s["model_name_or_path"],
            "model.name",
            str(s["model_name_or_path"]),
        )
    if s.get("use_peft"):
        for trl_name, key in (
            ("lora_r", "lora_r"),
            ("lora_alpha", "lora_alpha"),
            ("lora_dropout", "lora_dropout"),
        ):
            if trl_name in s:
                out.set(trl_name, s[trl_name], f"model.{key}", s[trl_name])
        if "lora_r" not in s:
            out.set("use_peft", True, "model.lora_r", 16, "TRL's default rank")
    if s.get("dataset_name"):
        out.refuse(
            "dataset_name",
            s["dataset_name"],
            "no hub here: save the data set with "
            "Dataset.save_to_disk and pass the folder as --prompts",
        )
    if s.get("dataset_train_split"):
        out.set(
            "dataset_train_split",
            s["dataset_train_split"],
            "data.split",
            str(s["dataset_train_split"]),
        )
    return {
        "model_name_or_path",
        "use_peft",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "dataset_name",
        "dataset_train_split",
    }


def import_trl_file(
    config: Path, trainer: str, prompts: str | None, reward: str | None, out_path: Path
) -> Imported:
    """Read a TRL config file and build the recipe for `out_path` (checked, not written)."""
    data = read_recipe_file(config)
    try:
        imported = import_trl(data, trainer)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a number that is text, a list for a number...
        raise ConfigError(f"{config}: a TRL setting has a value of the wrong kind: {exc}") from None
    if prompts:
        imported.recipe.setdefault("data", {})["prompts"] = _relative(prompts, out_path)
    if reward:
        path, _, function = reward.partition(":")
        params = {"path": _relative(path, out_path), "function": function or "reward"}
        imported.recipe["reward"] = {"components": [{"kind": "python", "params": params}]}
    try:
        validate(from_dict(RunConfig, imported.recipe))
    except ConfigError as exc:
        raise ConfigError(
            f"{config}: the imported settings do not make a valid recipe: {exc}"
        ) from None
    return imported


def _relative(path: str, out_path: Path) -> str:
    """A path typed on the command line, as the recipe (in `out_path`'s folder) reads it."""
    p = Path(path).expanduser()
    if not p.exists():
        return path  # a bundled prompt set's name
    return os.path.relpath(p.resolve(), out_path.resolve().parent)


def write_recipe(imported: Imported, config: Path, out_path: Path) -> None:
    """The recipe as TOML (YAML for a .yaml / .yml path), headed by where it came from."""
    if out_path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        body = yaml.safe_dump(imported.recipe, sort_keys=False)
    else:
        import tomli_w

        body = tomli_w.dumps(imported.recipe)
    header = (
        f"# Imported from the TRL {imported.trainer.upper()}Config {config.name} by "
        "`rlstudio import-trl`.\n# Settings left out keep RL Studio's defaults.\n\n"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(header + body, encoding="utf-8")


def report(imported: Imported, config: Path, out_path: Path) -> str:
    """What the import did, name by name: for the terminal."""
    lines = [f"wrote {out_path} from the TRL {imported.trainer.upper()}Config {config}", "mapped:"]
    lines += [f"  {line}" for line in imported.mapped]
    if imported.not_mapped:
        lines.append("not mapped (nothing here means the same; set these by hand if needed):")
        lines += [f"  {line}" for line in imported.not_mapped]
    if imported.ignored:
        lines.append("ignored (off in TRL, or plumbing that changes nothing here): ")
        lines[-1] += ", ".join(imported.ignored)
    if "reward" not in imported.recipe:
        lines.append(
            "next: name your reward (TRL's reward_funcs live in code): --reward FILE.py:FUNCTION"
        )
    if "name" not in imported.recipe.get("model", {}):
        lines.append("next: the model is RL Studio's default; set [model] name, or train --model")
    if "prompts" not in imported.recipe.get("data", {}):
        lines.append("next: name your prompts: --prompts FILE or a save_to_disk folder")
    return "\n".join(lines) + "\n"
