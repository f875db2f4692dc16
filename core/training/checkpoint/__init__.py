"""Checkpoints: saving a run's whole state, checking it before trusting it, reading it
back without running code from the file. `folder` writes and reads a checkpoint, `state`
its trainer state as tensors plus JSON, `manifest` the files' sizes and checksums, and
`verify` what makes a checkpoint usable."""

from core.training.checkpoint.folder import (
    export_model,
    load_checkpoint,
    prune,
    remove_partial,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from core.training.checkpoint.manifest import MANIFEST
from core.training.checkpoint.state import (
    LEGACY_STATE_FILE,
    STATE_JSON,
    STATE_TENSORS,
    StateUnreadable,
    is_legacy,
    legacy_note,
    read_trainer_state,
)
from core.training.checkpoint.verify import checkpoint_problem, newest_usable

__all__ = [
    "LEGACY_STATE_FILE",
    "MANIFEST",
    "STATE_JSON",
    "STATE_TENSORS",
    "StateUnreadable",
    "checkpoint_problem",
    "export_model",
    "is_legacy",
    "legacy_note",
    "load_checkpoint",
    "newest_usable",
    "prune",
    "read_trainer_state",
    "remove_partial",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
