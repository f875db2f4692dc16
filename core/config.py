"""The run configuration: frozen dataclasses whose field metadata (help, bounds,
choices) drives validation here and the hyperparameter form in the studio.

A config is never mutated: `with_overrides` and `dataclasses.replace` return a new one.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

ALGORITHM_NAMES = ("ppo", "a2c", "reinforce", "rloo", "grpo", "ilql")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
TRACKER_NAMES = ("tensorboard", "wandb", "mlflow", "trackio", "all", "none")


class ConfigError(ValueError):
    """A bad setting: the message names the field, the value and what is allowed."""


def setting(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    min_exclusive: bool = False,
) -> Any:
    """A dataclass field carrying the metadata the validator and the studio's form read;
    `min_exclusive`: the value must be above `min`, not equal to it."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if min_exclusive:
        meta["min_exclusive"] = True
    if isinstance(default, (list, dict)):  # mutable defaults need a factory
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    name: str = setting(
        "smollm2-135m-instruct",
        "Model: 'smollm2-135m-instruct' (bundled), 'tiny-random', a local "
        "Hugging Face folder, a .gguf file, or a hub id",
    )
    device: str = setting("auto", "Where to train", choices=("auto", "cpu", "cuda", "mps"))
    dtype: str = setting(
        "auto",
        "Compute precision; auto picks bf16 where the device supports it",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    lora_r: int = setting(0, "LoRA rank; 0 trains every weight", min=0, max=1024)
    lora_alpha: int = setting(16, "LoRA scaling alpha", min=1, max=4096)
    lora_dropout: float = setting(0.0, "Dropout inside the LoRA adapters", min=0.0, max=0.9)
    gradient_checkpointing: bool = setting(False, "Trade compute for memory in the backward pass")
    compile: bool = setting(
        False,
        "torch.compile the update's forward and backward (pays on a GPU; the first steps "
        "are slower while it compiles; sampling stays eager)",
    )


@dataclass(frozen=True)
class DataConfig:
    prompts: str = setting(
        "story_openings",
        "A bundled prompt set name, a .jsonl / .json / .csv / .txt / .parquet file, or a "
        "folder saved with datasets' save_to_disk",
    )
    prompt_column: str = setting(
        "prompt", "Column holding the prompt: text, or a list of chat messages (role, content)"
    )
    split: str = setting("train", "The split to read from a saved DatasetDict folder")
    chat_template: str = setting(
        "auto", "Wrap prompts in the model's chat template", choices=("auto", "on", "off")
    )
    max_prompt_tokens: int = setting(256, "Longer prompts are cut from the left", min=8, max=32768)
    shuffle: bool = setting(True, "Shuffle prompts every pass (seeded)")
    heldout_fraction: float = setting(
        0.1, "Share of prompts kept aside for evaluation (0 = no evaluation)", min=0.0, max=0.9
    )


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = setting(48, "Tokens generated per completion", min=1, max=8192)
    temperature: float = setting(1.0, "Sampling temperature", min=0.05, max=5.0)
    top_k: int = setting(0, "Sample among the k most likely tokens; 0 = off", min=0, max=100000)
    top_p: float = setting(1.0, "Nucleus sampling mass; 1 = off", min=0.01, max=1.0)
    stop: tuple[str, ...] = setting((), "Strings that end a completion")
    sampler: str = setting(
        "loop",
        "loop: our sampling loop (each prompt prefilled once, finished rows leave the "
        "batch); generate: transformers' generate() (always, with FSDP)",
        choices=("loop", "generate"),
    )
    sampling_dtype: str = setting(
        "float32",
        "Precision the rollouts are sampled in: float32 samples from the policy itself; "
        "bfloat16 from a bfloat16 copy of it, refreshed after every update (half the bytes "
        "read per token; the update keeps model.dtype, and algorithm.is_clip_max corrects "
        "the mismatch). Falls back to float32, with a line in the log, where the device "
        "has no fast bfloat16",
        choices=("float32", "bfloat16"),
    )
    sampling_threads: int = setting(
        0,
        "CPU threads for sampling; 0 = auto: torch's count, fewer while other processes "
        "keep cores busy (measured before each rollout, said in the log); set a count for "
        "runs that must repeat bit for bit under changing load",
        min=0,
        max=1024,
    )


@dataclass(frozen=True)
class AlgorithmConfig:
    name: str = setting("ppo", "RL algorithm", choices=ALGORITHM_NAMES)
    group_size: int = setting(
        1, "Completions sampled per prompt (RLOO and GRPO need 2 or more)", min=1, max=1024
    )
    epochs: int = setting(2, "Passes over each batch of rollouts (PPO, GRPO)", min=1, max=64)
    minibatches: int = setting(2, "Minibatches per pass", min=1, max=1024)
    clip_range: float = setting(0.2, "PPO ratio clip epsilon", min=0.0, max=10.0)
    clip_range_value: float = setting(0.2, "PPO value clip epsilon", min=0.0, max=100.0)
    vf_coef: float = setting(0.1, "Weight of the value loss", min=0.0, max=100.0)
    gamma: float = setting(1.0, "Discount factor", min=0.0, max=1.0)
    lam: float = setting(0.95, "GAE lambda", min=0.0, max=1.0)
    whiten_advantages: bool = setting(True, "Normalise advantages to mean 0, std 1 per batch")
    kl_estimator: str = setting(
        "auto",
        "Per-token KL estimator: k1 (log ratio), k2 (half its square), k3 (Schulman's unbiased, "
        "non-negative); auto = k1 in the reward, k3 in the loss",
        choices=("auto", "k1", "k2", "k3"),
    )
    kl_coef: float = setting(
        0.05, "Initial KL coefficient (TRL's beta for GRPO / RLOO)", min=0.0, max=100.0
    )
    adaptive_kl: bool = setting(True, "Adapt the KL coefficient toward kl_target")
    kl_target: float = setting(
        6.0, "Target KL (nats per sequence) for the controller", min=0.0001, max=1000.0
    )
    # Ziegler et al.'s controller moves the coefficient by at most 0.2 * completions / horizon
    # per step: 500 lets it move about 6% a step at 16 completions (TRL's legacy 10000 was
    # sized for batches of 128 and thousands of steps; here it would barely move in a run).
    kl_horizon: int = setting(
        500,
        "Horizon of the adaptive KL controller, in completions (all processes together)",
        min=1,
        max=10**9,
    )
    reward_clip: float = setting(10.0, "Clip scores to +/- this; 0 = off", min=0.0, max=1e6)
    running_std_scaling: bool = setting(
        False, "Divide scores by the running std of all scores seen so far"
    )
    missing_eos_penalty: float = setting(
        0.0, "Subtract from the score of completions cut off before EOS", min=0.0, max=1000.0
    )
    baseline_decay: float = setting(
        0.9, "Moving-average baseline decay (REINFORCE)", min=0.0, max=0.9999
    )
    scale_rewards: str = setting(
        "group",
        "GRPO (TRL's meaning): divide advantages by the std of their group, of the whole batch, "
        "or not at all (none: Dr. GRPO)",
        choices=("group", "batch", "none"),
    )
    loss_type: str = setting(
        "grpo",
        "GRPO (TRL's names): grpo = mean per completion, then over completions; bnpo = mean "
        "over the minibatch's tokens; dr_grpo = token sum / (completions x max_new_tokens); "
        "dapo = mean over the tokens of the whole batch",
        choices=LOSS_TYPES,
    )
    kl_in: str = setting(
        "auto",
        "RLOO / GRPO: the KL as a per-token penalty in the reward or as a loss term; "
        "auto = in the loss for GRPO, in the reward for RLOO",
        choices=("auto", "reward", "loss"),
    )
    epsilon_high: float = setting(
        0.0,
        "Upper ratio clip (DAPO's clip-higher) for PPO and GRPO; 0 = clip_range",
        min=0.0,
        max=10.0,
    )
    importance_sampling_level: str = setting(
        "token",
        "GRPO: one ratio per token, or one length-normalised ratio per completion (GSPO)",
        choices=("token", "sequence"),
    )
    mask_truncated_completions: bool = setting(
        False, "Completions cut off by max_new_tokens leave the policy loss (DAPO)"
    )
    entropy_coef: float = setting(
        0.0,
        "Entropy bonus of the policy loss (policy-gradient algorithms; A2C classically 0.01)",
        min=0.0,
        max=10.0,
    )
    target_kl: float = setting(
        0.0,
        "PPO: stop a batch's epochs early once the approximate KL to the sampling policy "
        "passes this; 0 = off",
        min=0.0,
        max=100.0,
    )
    # Off by default, measured: the reward scores the cut text as a whole, so a bootstrap
    # counts that score again, and V after the last token is never a target of its own, so
    # at gamma 1 it climbs (value/bootstrap_mean 0 -> 0.15, 0.61 in 40 steps of the tiny recipe,
    # whose rewards stay below 0.2; its reward rose by -0.002, +0.079, +0.024 over seeds 0-2
    # with it, +0.022, +0.062, +0.046 without).
    bootstrap_truncated: bool = setting(
        False,
        "PPO / A2C: a completion cut off by max_new_tokens did not end, so its return goes on "
        "with the value head's estimate after its last token (Pardo et al. 2018) instead of "
        "stopping there; for rewards that judge a cut completion as unfinished. "
        "missing_eos_penalty still lowers a cut completion's score",
    )
    ratio_threshold: float = setting(
        10.0,
        "PPO: skip a minibatch whose mean importance ratio passes this (a loss spike)",
        min=1.0,
        max=1e6,
    )
    top_entropy_quantile: float = setting(
        1.0,
        "GRPO: only this share of the tokens, those of highest entropy, carry the policy "
        "loss (Wang et al. 2025: 0.2); 1 = all",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    )
    is_clip_max: float = setting(
        2.0,
        "With generation.sampling_dtype = bfloat16: the cap C of the truncated importance "
        "weight min(exp(logp_policy - logp_sampler), C) on every token's policy-gradient "
        "loss (TRL's vllm_importance_sampling_cap, token_truncate); without it the weight is 1",
        min=1.0,
        max=1e6,
    )


@dataclass(frozen=True)
class IlqlConfig:
    mode: str = setting(
        "online",
        "Learn from a rated data set (offline) or from the policy's rollouts (online)",
        choices=("offline", "online"),
    )
    dataset: str = setting("", "Offline: .jsonl with prompt, completion and reward per line")
    tau: float = setting(0.7, "Expectile of the V loss", min=0.5, max=0.999)
    gamma: float = setting(0.99, "Discount between tokens", min=0.0, max=1.0)
    lam: float = setting(
        0.95,
        "Q target: lambda-return (0 = one-step r + gamma V(s') as in ILQL, 1 = Monte Carlo)",
        min=0.0,
        max=1.0,
    )
    cql_scale: float = setting(0.1, "Weight of the conservative (CQL) term", min=0.0, max=100.0)
    awac_scale: float = setting(1.0, "Weight of the advantage-weighted LM loss", min=0.0, max=100.0)
    beta: float = setting(
        2.0,
        "Decoding: logits + beta * (Q - V); also the AWAC weight exp(beta * (Q - V))",
        min=0.0,
        max=100.0,
    )
    polyak: float = setting(0.05, "Target Q update rate (Polyak averaging)", min=0.0, max=1.0)
    heads_lr_scale: float = setting(
        10.0,
        "Learning rate of the Q and V heads, as a multiple of training.learning_rate",
        min=0.01,
        max=1000.0,
    )
    two_qs: bool = setting(True, "Two Q heads, taking the minimum (less over-estimation)")
    replay_size: int = setting(
        512, "Online: completions kept in the replay buffer", min=1, max=10**7
    )
    updates_per_step: int = setting(2, "Online: gradient steps per rollout batch", min=1, max=1000)
    exploration: str = setting(
        "boltzmann",
        "Online: sample adjusted logits (boltzmann) or mix in uniform tokens",
        choices=("boltzmann", "epsilon"),
    )
    epsilon: float = setting(
        0.05, "Online epsilon-greedy: chance of a uniform token", min=0.0, max=1.0
    )


@dataclass(frozen=True)
class RewardComponentConfig:
    kind: str = setting("sentiment", "A built-in reward, or 'python' for a .py file")
    weight: float = setting(1.0, "Weight in the total reward", min=-1000.0, max=1000.0)
    name: str = setting("", "Name in the logs (default: the kind or the file name)")
    params: dict = setting({}, "Parameters of the reward (e.g. target, keywords, path)")


@dataclass(frozen=True)
class RewardConfig:
    components: tuple[RewardComponentConfig, ...] = setting(
        (RewardComponentConfig(),), "Reward components, summed with their weights"
    )
    normalize: bool = setting(
        False,
        "Standardise the total reward by its running mean and std before the update "
        "(clipping and std scaling are algorithm.reward_clip and algorithm.running_std_scaling)",
    )
    time_limit_s: float = setting(
        30.0, "Seconds reward code (python rewards) may take on one batch", min=0.1, max=86400.0
    )
    memory_limit_mb: int = setting(
        4096,
        "Memory cap of the process running reward code, in MB (Linux); 0 = no cap, "
        "needed for reward code that uses a GPU",
        min=0,
        max=10**7,
    )


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = setting(20, "Optimisation steps (each: one batch of rollouts)", min=1, max=10**7)
    batch_size: int = setting(8, "Prompts per step", min=1, max=65536)
    learning_rate: float = setting(
        1e-5, "Adam learning rate (above 0)", min=0.0, max=1.0, min_exclusive=True
    )
    weight_decay: float = setting(0.0, "AdamW weight decay", min=0.0, max=1.0)
    lr_schedule: str = setting(
        "constant", "Learning-rate schedule", choices=("constant", "linear", "cosine")
    )
    warmup_steps: int = setting(0, "Linear warm-up steps", min=0, max=10**6)
    max_grad_norm: float = setting(1.0, "Clip the gradient norm; 0 = off", min=0.0, max=1e6)
    max_skipped_updates: int = setting(
        5,
        "Stop the run (failed, with a message) after this many updates in a row were skipped "
        "for a loss or gradient that is not finite (inf or NaN); 0 = never stop",
        min=0,
        max=10**6,
    )
    seed: int = setting(0, "Seed for sampling, shuffling and initialisation", min=0, max=2**32 - 1)
    checkpoint_every: int = setting(
        10, "Save a checkpoint every N steps; 0 = only at the end", min=0, max=10**7
    )
    eval_every: int = setting(
        0,
        "Evaluate on the held-out prompts every N steps (0 = before and after training)",
        min=0,
        max=10**7,
    )
    keep_checkpoints: int = setting(2, "How many recent checkpoints to keep", min=1, max=1000)


@dataclass(frozen=True)
class LoggingConfig:
    run_name: str = setting("", "Name of the run in the store (default: recipe and time)")
    samples_per_step: int = setting(4, "Completions stored per step", min=0, max=65536)
    report_to: tuple[str, ...] = setting(
        (),
        "Trackers fed the run's metrics, settings and samples besides the store (TRL's "
        "name): tensorboard, wandb, mlflow, trackio; 'all' = every one installed",
        choices=TRACKER_NAMES,
    )


# The doctor's rules (core/doctor/rules.py), by the kind of finding each makes: named here
# so `doctor.disable` is checked like any other setting.
DOCTOR_RULES = (
    "no_learning_signal",
    "kl_runaway",
    "kl_controller_saturated",
    "entropy_collapse",
    "truncation",
    "reward_hacking",
    "value_head",
    "instability",
    "non_finite",
    "stalled",
)


@dataclass(frozen=True)
class DoctorConfig:
    """The run doctor: rules over the recent metrics that say when a run goes wrong."""

    enabled: bool = setting(True, "Check the run after every step and report what goes wrong")
    disable: tuple[str, ...] = setting((), f"Rules to turn off: {', '.join(DOCTOR_RULES)}")
    pause_on: str = setting(
        "",
        "Pause the run when a finding this severe appears (empty: never pause)",
        choices=("", "warning", "critical"),
    )
    window: int = setting(5, "Steps a rule looks back over", min=2, max=1000)
    zero_std_frac: float = setting(
        0.9, "No learning signal: share of groups whose rewards are all equal", min=0.0, max=1.0
    )
    kl_factor: float = setting(
        3.0, "KL runaway: KL above this multiple of algorithm.kl_target", min=1.0, max=1e6
    )
    kl_critical_factor: float = setting(
        10.0, "KL runaway is critical above this multiple of algorithm.kl_target", min=1.0, max=1e6
    )
    kl_growth: float = setting(
        4.0, "KL runaway: KL multiplied by this within the window (and above target)", min=1.0
    )
    entropy_drop: float = setting(
        0.1, "Entropy collapse: entropy below this share of its start", min=0.0, max=1.0
    )
    distinct_drop: float = setting(
        0.5, "Entropy collapse: distinct-2 of the samples below this share of its start", min=0.0
    )
    truncated_frac: float = setting(
        0.8, "Truncation: share of completions cut at max_new_tokens", min=0.0, max=1.0
    )
    length_corr: float = setting(
        0.9, "Reward hacking: correlation of reward and length over the steps", min=0.0, max=1.0
    )
    explained_variance_floor: float = setting(
        0.0, "Value head: explained variance staying below this (PPO, A2C)", min=-1e6, max=1.0
    )
    grad_spike: float = setting(
        10.0, "Instability: gradient norm above this multiple of its recent median", min=1.0
    )
    clipfrac_max: float = setting(
        0.3, "Instability: share of clipped ratios above this", min=0.0, max=1.0
    )
    stall_steps: int = setting(20, "Stalled: steps the reward is looked at over", min=4)
    stall_t: float = setting(
        1.0, "Stalled: the reward's trend within this many standard errors of none", min=0.0
    )


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ilql: IlqlConfig = field(default_factory=IlqlConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    description: str = setting(
        "", "One line on what the recipe trains, shown beside its name in the studio's list"
    )
    base_dir: str = field(
        default="", metadata={"help": "Folder relative paths resolve against", "hidden": True}
    )

    def resolve_path(self, path: str) -> Path:
        """A path from the config, relative to the recipe's folder when not absolute."""
        p = Path(path).expanduser()
        return p if p.is_absolute() or not self.base_dir else Path(self.base_dir) / p


# ---- dict <-> dataclass, with validation -------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_value(path: str, value: Any, hint: Any, meta: typing.Mapping) -> Any:
    """Coerce `value` to the field's type and check bounds/choices; raise ConfigError."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table of settings, got {value!r}")
        return from_dict(hint, value, prefix=path)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            value = [value]
        each = {"choices": meta.get("choices")}  # a list setting's choices hold for each item
        return tuple(_check_value(f"{path}[{i}]", v, item, each) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: expected true or false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{path} = {value!r}: expected a whole number")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} = {value!r}: expected a number")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{path} = {value!r}: expected a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r}: expected text")
    elif hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} = {value!r}: expected a table")
        return dict(value)
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{path} = {value!r}: must be one of {', '.join(choices)}")
    if lo is not None and meta.get("min_exclusive") and value <= lo:
        raise ConfigError(f"{path} = {value!r}: must be above {lo}")
    if lo is not None and value < lo:
        raise ConfigError(f"{path} = {value!r}: must be at least {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{path} = {value!r}: must be at most {hi}")
    return value


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build a validated `cls` from plain data; unknown keys are errors (typos must not pass)."""
    if cls is AlgorithmConfig:
        data = _renamed_algorithm_settings(data, prefix or "algorithm")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"[{prefix}]" if prefix else "the top level"
        known = ", ".join(n for n, f in fields.items() if not f.metadata.get("hidden"))
        raise ConfigError(f"unknown setting {unknown[0]!r} in {where}; known: {known}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_value(path, value, hints[name], fields[name].metadata)
    return cls(**kwargs)


class RenamedSetting(FutureWarning):
    """A recipe used an old name of a setting; it was mapped to the new one."""


_OLD_LOSS_NORMALIZATION = {"sequence": "grpo", "token": "bnpo"}


def _renamed_algorithm_settings(data: dict, where: str) -> dict:
    """Old recipes (and stored runs) keep loading: names from before TRL's were adopted map
    to the new ones, each with a warning. `scale_rewards` once meant a running-std divide;
    as a true/false it keeps that meaning (now `running_std_scaling`), as text it is TRL's."""
    data = dict(data)
    notes = []
    if isinstance(data.get("scale_rewards"), bool):
        old = data.pop("scale_rewards")
        if old:
            data.setdefault("running_std_scaling", True)
            notes.append(
                f"{where}.scale_rewards = true (RL Studio's running-std divide) is now "
                f"{where}.running_std_scaling = true; scale_rewards now has TRL's meaning "
                '("group", "batch" or "none")'
            )
    if "scale_by_std" in data:
        old = data.pop("scale_by_std")
        if isinstance(old, bool):
            data.setdefault("scale_rewards", "group" if old else "none")
            notes.append(f"{where}.scale_by_std is now {where}.scale_rewards (group / none)")
    if "loss_normalization" in data:
        old = data.pop("loss_normalization")
        if old in _OLD_LOSS_NORMALIZATION:
            data.setdefault("loss_type", _OLD_LOSS_NORMALIZATION[old])
            notes.append(
                f'{where}.loss_normalization = "{old}" is now {where}.loss_type = '
                f'"{_OLD_LOSS_NORMALIZATION[old]}" (TRL\'s name)'
            )
        else:
            raise ConfigError(f"{where}.loss_normalization = {old!r}: must be sequence or token")
    for note in notes:
        warnings.warn(note, RenamedSetting, stacklevel=3)
    return data


def to_dict(cfg: Any) -> dict:
    """Plain, TOML-ready data (tuples become lists, hidden fields dropped)."""
    out = {}
    for f in dataclasses.fields(cfg):
        if f.metadata.get("hidden"):
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = [to_dict(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


# Settings that change the objective of some algorithms only: (field, value that means
# "off", the algorithms it applies to). Set for another, it would silently do nothing.
_ALGORITHM_ONLY = (
    ("epsilon_high", 0.0, ("ppo", "grpo")),
    ("importance_sampling_level", "token", ("grpo",)),
    ("loss_type", "grpo", ("grpo",)),
    ("mask_truncated_completions", False, ("grpo", "rloo", "reinforce")),
    ("entropy_coef", 0.0, ("ppo", "a2c", "reinforce", "rloo", "grpo")),
    ("target_kl", 0.0, ("ppo",)),
    ("bootstrap_truncated", False, ("ppo", "a2c")),
    ("ratio_threshold", 10.0, ("ppo",)),
    ("top_entropy_quantile", 1.0, ("grpo",)),
    ("is_clip_max", 2.0, ("ppo", "a2c", "reinforce", "rloo", "grpo")),
)


def kl_placement(a: AlgorithmConfig) -> tuple[str, str]:
    """(where the KL to the reference goes, its estimator) once "auto" is resolved: GRPO
    takes k3 in the loss (Shao et al.), everything else a k1 penalty in the reward."""
    where = a.kl_in if a.kl_in != "auto" else ("loss" if a.name == "grpo" else "reward")
    estimator = a.kl_estimator if a.kl_estimator != "auto" else ("k3" if where == "loss" else "k1")
    return where, estimator


def _check_algorithm_settings(a: AlgorithmConfig) -> None:
    for name, off, applies in _ALGORITHM_ONLY:
        if getattr(a, name) != off and a.name not in applies:
            raise ConfigError(
                f"algorithm.{name} = {getattr(a, name)!r} does not apply to {a.name} "
                f"(only to {', '.join(applies)})"
            )
    if a.scale_rewards != "group" and a.name != "grpo":
        raise ConfigError(f"algorithm.scale_rewards = {a.scale_rewards!r} applies to grpo only")
    where, estimator = kl_placement(a)
    if where == "loss" and a.name not in ("rloo", "grpo"):
        raise ConfigError(
            f'algorithm.kl_in = "loss": only rloo and grpo take the KL as a loss term; '
            f"{a.name} subtracts it from the reward"
        )
    if where == "loss" and estimator == "k1":
        raise ConfigError(
            'algorithm.kl_estimator = "k1" with the KL in the loss: the gradient of k1 is '
            "zero on average, so it would not pull toward the reference; use k3 or k2"
        )


def validate(cfg: RunConfig) -> RunConfig:
    """Re-check a config built in code (the same rules as from a file) plus cross-field rules."""
    checked = from_dict(RunConfig, to_dict(cfg))
    checked = dataclasses.replace(checked, base_dir=cfg.base_dir)
    t, a = checked.training, checked.algorithm
    rows = t.batch_size * a.group_size
    if a.minibatches > rows:
        raise ConfigError(
            f"algorithm.minibatches = {a.minibatches}: must be at most the completions per "
            f"step, training.batch_size x algorithm.group_size ({rows})"
        )
    if a.name in ("rloo", "grpo") and a.group_size < 2:
        raise ConfigError(
            f"algorithm.group_size = {a.group_size}: {a.name} compares completions of the "
            "same prompt, so it needs at least 2"
        )
    _check_algorithm_settings(a)
    if a.name == "ilql" and checked.generation.sampling_dtype != "float32":
        raise ConfigError(
            f"generation.sampling_dtype = {checked.generation.sampling_dtype!r} does not apply "
            "to ilql: it samples from its Q-adjusted heads and has no policy-gradient loss for "
            'the importance weight to correct; use "float32"'
        )
    if a.name == "ilql" and checked.ilql.mode == "offline" and not checked.ilql.dataset:
        raise ConfigError("ilql.dataset: offline ILQL needs a rated .jsonl data set")
    if not checked.reward.components:
        raise ConfigError("reward.components: at least one reward is needed")
    unknown = [r for r in checked.doctor.disable if r not in DOCTOR_RULES]
    if unknown:
        raise ConfigError(
            f"doctor.disable: unknown rule {unknown[0]!r}; the rules: {', '.join(DOCTOR_RULES)}"
        )
    return checked


YAML_SUFFIXES = (".yaml", ".yml")


def read_recipe_file(path: Path) -> dict:
    """The plain data of a recipe: TOML, or YAML for a .yaml / .yml file (the same fields)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if path.suffix.lower() in YAML_SUFFIXES:
        data = _read_yaml(path, text)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of settings, got {type(data).__name__}")
    return data


def _read_yaml(path: Path, text: str) -> Any:
    import re

    import yaml  # only for a YAML recipe

    class Loader(yaml.SafeLoader):
        """SafeLoader that also reads 1e-6 as a number (YAML 1.1 wants 1.0e-6, but TRL
        configs and Python write 1e-6 for a learning rate)."""

    number = re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789."))
    try:
        data = yaml.load(text, Loader=Loader)  # safe: SafeLoader's constructors only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    return {} if data is None else data


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a recipe (TOML, or YAML); errors name the file and the setting."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    data = read_recipe_file(path)
    base_dir = path.resolve().parent
    try:
        cfg = from_dict(RunConfig, data)
        model = Path(cfg.model.name).expanduser()
        if not model.is_absolute() and (base_dir / model).exists():  # relative to the recipe
            cfg = dataclasses.replace(
                cfg, model=dataclasses.replace(cfg.model, name=str(base_dir / model))
            )
        return validate(dataclasses.replace(cfg, base_dir=str(base_dir)))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the recipe as TOML, or as YAML to a .yaml / .yml path."""
    path = Path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    else:
        text = tomli_w.dumps(to_dict(cfg))
    path.write_text(text, encoding="utf-8")


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value), the value read as TOML when it parses, else as text."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. training.steps=50")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A new validated config with dotted keys replaced (`training.steps` -> 50)."""
    data = to_dict(cfg)
    for key, value in overrides.items():
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown setting {key!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown setting {key!r}")
        node[parts[-1]] = value
    return validate(dataclasses.replace(from_dict(RunConfig, data), base_dir=cfg.base_dir))


def field_info(cls: type) -> list[tuple[str, Any, types.MappingProxyType]]:
    """(name, type hint, metadata) of each visible field: what a generated form needs."""
    hints = _hints(cls)
    return [
        (f.name, hints[f.name], f.metadata)
        for f in dataclasses.fields(cls)
        if not f.metadata.get("hidden")
    ]


def check_setting(cls: type, name: str, value: Any, prefix: str = "") -> Any:
    """Check one field of `cls` as a recipe would (type, range, choices): what a form
    calls on every edit to show an inline message. Raises ConfigError."""
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return _check_value(f"{prefix}.{name}" if prefix else name, value, _hints(cls)[name], meta)


# The settings a run may change when it is resumed (the CLI's `resume --set`, the studio's
# resume form): they change how it goes on, not what it is. Any other setting would make
# the checkpoint and the run disagree; a fresh start takes those.
RESUMABLE_SETTINGS: tuple[str, ...] = (
    "training.learning_rate",
    "algorithm.kl_coef",
    "training.steps",
    "generation.temperature",
    "generation.max_new_tokens",
    "training.eval_every",
    "training.checkpoint_every",
    "training.keep_checkpoints",
)


def resumed_with(
    cfg: RunConfig, overrides: dict[str, Any]
) -> tuple[RunConfig, list[tuple[str, Any, Any]]]:
    """`cfg` with the changes a resume asks for, and those changes as (key, old, new).
    Raises ConfigError naming any setting that cannot change mid-run."""
    refused = [key for key in overrides if key not in RESUMABLE_SETTINGS]
    if refused:
        raise ConfigError(
            f"{', '.join(refused)} cannot change when a run is resumed; these can: "
            f"{', '.join(RESUMABLE_SETTINGS)} (a fresh start, --from-scratch, takes any setting)"
        )
    new = with_overrides(cfg, overrides)
    changes = []
    for key in overrides:
        section, name = key.split(".")
        old_value, new_value = (getattr(getattr(c, section), name) for c in (cfg, new))
        if old_value != new_value:
            changes.append((key, old_value, new_value))
    return new, changes
