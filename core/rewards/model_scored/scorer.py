"""What the model-scored rewards share: one frozen model per process, batching, a cache.

``shared_model`` loads a scoring model once per (kind, model, device) in the process, in
eval mode without gradients, leaving the random-number state as it was; ``release_model``
lets it go when a run ends and ``unload_models`` forgets them all. ``CachedScorer`` is the
batched reward both the judge and the reward model are: it scores each (prompt, completion)
text once, in batches of similar lengths, and remembers the scores in an LRU dict.
``check_device`` and the ``DEVICE_PARAM``, ``BATCH_SIZE_PARAM`` and ``CACHE_SIZE_PARAM``
parameters are their common settings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.rewards.errors import RewardConfigError
from core.rewards.params import Param

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")

Pair = tuple[str, str]


# ---- parameter checks and parameters shared by the model-scored rewards ----------------


def check_device(component: str, value: str) -> torch.device:
    """The device now, so "cuda" on a machine without one fails before training starts."""
    from core.lm.device import ModelError, resolve_device

    try:
        return resolve_device(value)
    except (ModelError, RuntimeError) as exc:
        raise RewardConfigError(f"{component}: parameter 'device': {exc}") from None


DEVICE_PARAM = Param(
    "device",
    "str",
    "Where the scoring model runs; auto picks CUDA, then Apple MPS, then the CPU, "
    "as the policy's auto does",
    default="auto",
    choices=DEVICES,
)
BATCH_SIZE_PARAM = Param(
    "batch_size", "int", "Samples per forward pass", default=16, min=1, max=4096
)
CACHE_SIZE_PARAM = Param(
    "cache_size",
    "int",
    "Scores remembered by (prompt, completion) text, least recently used dropped first; "
    "0 turns the cache off",
    default=4096,
    min=0,
)


# ---- models loaded once per process ---------------------------------------------------


@dataclass
class LoadedScorer:
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype


_loaded: dict[tuple, LoadedScorer] = {}
_load_lock = threading.Lock()


def shared_model(key: tuple, load: Callable[[], tuple[Any, Any]], device: torch.device):
    """Load (model, tokenizer) for ``key`` once per process, on ``device``, frozen.

    The random-number state is left as it was, so adding a judge does not change
    which completions a seeded run samples.
    """
    import torch

    from core.lm.device import resolve_dtype

    with _load_lock:
        if key not in _loaded:
            with torch.random.fork_rng(devices=[]):
                model, tokenizer = load()
            model.to(device).eval().requires_grad_(False)
            _loaded[key] = LoadedScorer(model, tokenizer, device, resolve_dtype(device))
        return _loaded[key]


def release_model(key: tuple) -> None:
    """Drop the shared model for ``key``; its memory goes once no scorer holds it."""
    with _load_lock:
        _loaded.pop(key, None)


def unload_models() -> None:
    """Forget every judge and reward model loaded so far (tests; freeing memory)."""
    with _load_lock:
        _loaded.clear()


# ---- batching and the cache -----------------------------------------------------------


class CachedScorer:
    """A batched reward over (prompt, completion) pairs that scores each pair once.

    ``cache_hits`` counts samples answered without the model (seen in an earlier
    call, or earlier in the same call), ``cache_misses`` samples the model scored.
    ``model_key`` names the shared model it scores with (see ``shared_model``).
    """

    model_key: tuple = ()

    def __init__(self, batch_size: int, cache_size: int) -> None:
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0
        self._cache: OrderedDict[Pair, float] = OrderedDict()

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        keys = list(zip(prompts, completions))
        found: dict[Pair, float] = {}
        todo: list[Pair] = []
        queued: set[Pair] = set()
        for key in keys:
            if key in found or key in queued:
                self.cache_hits += 1
            elif key in self._cache:
                self._cache.move_to_end(key)
                found[key] = self._cache[key]
                self.cache_hits += 1
            else:
                todo.append(key)
                queued.add(key)
        self.cache_misses += len(todo)
        # Similar lengths together: less padding in each batch.
        todo.sort(key=lambda pair: len(pair[0]) + len(pair[1]))
        if todo:
            import torch

            with torch.inference_mode():
                for start in range(0, len(todo), self.batch_size):
                    chunk = todo[start : start + self.batch_size]
                    for key, value in zip(chunk, self.score_batch(chunk)):
                        found[key] = value
                        self._remember(key, value)
        return [found[key] for key in keys]

    def _remember(self, key: Pair, value: float) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def score_batch(self, pairs: list[Pair]) -> list[float]:
        raise NotImplementedError

    def close(self) -> None:
        """Let the model go when the run ends (the composite calls this); the scores stay
        cached and a later call loads the model again."""
        release_model(self.model_key)
