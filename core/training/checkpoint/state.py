"""The trainer state on disk as plain data: its tensors in a safetensors file, the rest
(optimizer structure, scheduler, RNG states, controller and replay-buffer state) as JSON.

Reading it runs no code from the file: JSON yields only plain containers, and safetensors
only tensors. What JSON lacks is tagged: `{"$tensor": name}`, `{"$tuple": [...]}`,
`{"$bytes": base64}`, `{"$ndarray": {...}}` (numpy's RNG state), and `{"$dict": [[key,
value], ...]}` for a dict whose keys are not all plain strings (the optimizer's state is
keyed by parameter index).

Checkpoints of earlier versions hold one pickled `trainer_state.pt`: `read_legacy_state`
reads it with torch's restricted unpickler, which refuses anything but tensors, plain
containers and numpy arrays, and never falls back to a full unpickle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import RunStateError

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
LEGACY_STATE_FILE = "trainer_state.pt"  # pickled, before 0.3
_NUMBER_KINDS = "biuf"  # the numpy dtypes a state may hold: bool, ints, floats


class StateUnreadable(RunStateError):
    """The trainer state is damaged, or (an old one) holds what is not plain data."""


def write_trainer_state(state: dict, folder: Path) -> list[Path]:
    """Writes `state` into `folder` as JSON plus safetensors; returns the files written."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    tree = _encode(state, tensors, storages)
    json_path, tensor_path = folder / STATE_JSON, folder / STATE_TENSORS
    save_file(tensors, str(tensor_path))
    json_path.write_text(json.dumps(tree, separators=(",", ":")), encoding="utf-8")
    return [json_path, tensor_path]


def _encode(value: Any, tensors: dict[str, torch.Tensor], storages: set[int]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return {"$tensor": _add_tensor(value, tensors, storages)}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, tensors, storages) for k, v in value.items()}
        pairs = [(k, _encode(v, tensors, storages)) for k, v in value.items()]
        return {"$dict": [[_encode(k, tensors, storages), v] for k, v in pairs]}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, tensors, storages) for v in value]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMBER_KINDS:
        shape, data = list(value.shape), value.ravel().tolist()
        return {"$ndarray": {"dtype": value.dtype.str, "shape": shape, "data": data}}
    if isinstance(value, np.generic):
        return _encode(value.item(), tensors, storages)
    raise TypeError(f"a checkpoint's trainer state cannot hold {type(value).__name__}: {value!r}")


def _add_tensor(tensor: torch.Tensor, tensors: dict[str, torch.Tensor], storages: set) -> str:
    """safetensors refuses two tensors over one storage (a view, a tied weight): such a
    second one is stored as a copy."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.numel():
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in storages:
            tensor = tensor.clone()
            ptr = tensor.untyped_storage().data_ptr()
        storages.add(ptr)
    name = str(len(tensors))
    tensors[name] = tensor
    return name


def has_trainer_state(folder: Path) -> bool:
    return (folder / STATE_JSON).is_file() or (folder / LEGACY_STATE_FILE).is_file()


def is_legacy(folder: Path) -> bool:
    """A checkpoint of an earlier version: one pickled trainer_state.pt, no JSON."""
    return not (folder / STATE_JSON).is_file() and (folder / LEGACY_STATE_FILE).is_file()


def legacy_note(folder: Path) -> str:
    return (
        f"{folder.name} was saved by an earlier version (a pickled {LEGACY_STATE_FILE}): it is "
        "read with torch's restricted unpickler, which accepts tensors and plain containers "
        "only; the run's next checkpoints are saved as tensors plus JSON"
    )


def read_trainer_state(folder: Path) -> dict:
    """The trainer state of the checkpoint in `folder`, either format; StateUnreadable
    names what is wrong."""
    folder = Path(folder)
    if is_legacy(folder):
        return read_legacy_state(folder / LEGACY_STATE_FILE)
    tree = _read_json(folder / STATE_JSON)
    tensors = _read_tensors(folder / STATE_TENSORS)
    try:
        state = _decode(tree, tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateUnreadable(f"{STATE_JSON} does not match {STATE_TENSORS} ({exc})") from exc
    if not isinstance(state, dict):
        raise StateUnreadable(f"{STATE_JSON} does not hold a trainer state")
    return state


def check_trainer_state(folder: Path) -> None:
    """Raises StateUnreadable unless the trainer state in `folder` reads: the JSON and the
    tensors' header, whose names must be those the JSON refers to (the bytes themselves
    are the manifest's to check); an old `trainer_state.pt` is unpickled (restricted)."""
    from safetensors import safe_open

    folder = Path(folder)
    if is_legacy(folder):
        read_legacy_state(folder / LEGACY_STATE_FILE)
        return
    wanted = set(_tensor_names(_read_json(folder / STATE_JSON)))
    path = folder / STATE_TENSORS
    if not path.is_file():
        raise StateUnreadable(f"{STATE_TENSORS} is missing")
    try:
        with safe_open(str(path), framework="pt") as tensors:
            held = set(tensors.keys())
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        why = f"{type(exc).__name__}: {exc}"
        raise StateUnreadable(f"{STATE_TENSORS} cannot be read ({why})") from exc
    if wanted - held:
        raise StateUnreadable(f"{STATE_TENSORS} lacks {len(wanted - held)} of the state's tensors")


def _tensor_names(tree: Any) -> list[str]:
    if isinstance(tree, list):
        return [name for item in tree for name in _tensor_names(item)]
    if not isinstance(tree, dict):
        return []
    if set(tree) == {"$tensor"}:
        return [str(tree["$tensor"])]
    return [name for item in tree.values() for name in _tensor_names(item)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateUnreadable(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StateUnreadable(f"{path.name} cannot be read ({exc})") from exc


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise StateUnreadable(f"{path.name} is missing") from None
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise StateUnreadable(f"{path.name} cannot be read ({type(exc).__name__}: {exc})") from exc


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: _decode(v, tensors) for k, v in value.items()}
    if len(value) != 1:
        raise ValueError(f"a tagged value has other keys: {sorted(value)}")
    tag, body = next(iter(value.items()))
    if tag == "$tensor":
        return tensors[body]
    if tag == "$tuple":
        return tuple(_decode(v, tensors) for v in body)
    if tag == "$dict":
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in body}
    if tag == "$bytes":
        return base64.b64decode(body)
    if tag == "$ndarray":
        return _ndarray(body)
    raise ValueError(f"unknown tag {tag}")


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict)):
        raise TypeError(f"a dict key cannot be {type(key).__name__}")
    return key


def _ndarray(body: dict) -> np.ndarray:
    dtype = np.dtype(body["dtype"])
    if dtype.kind not in _NUMBER_KINDS:
        raise ValueError(f"an array of {dtype} is not plain numbers")
    return np.asarray(body["data"], dtype=dtype).reshape(body["shape"])


# ---- checkpoints written before 0.3 -------------------------------------------------------

# numpy's RNG state is an array: what rebuilds one (and nothing else) is allowed besides the
# tensors and containers torch's restricted unpickler accepts.
_NUMPY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def read_legacy_state(path: Path) -> dict:
    """An old `trainer_state.pt`, unpickled with torch's `weights_only=True` (no code of the
    file's can run); one that holds any other object is refused, never loaded in full."""
    if path.stat().st_size == 0:
        raise StateUnreadable(f"{path.name} is empty")
    try:
        with _numpy_allowed():
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise StateUnreadable(_legacy_problem(path, exc)) from exc
    if not isinstance(state, dict):
        raise StateUnreadable(f"{path.name} does not hold a trainer state")
    return state


def _numpy_allowed():
    """torch's own switch for the globals above (torch < 2.5 lacks it: arrays are refused)."""
    allow = getattr(torch.serialization, "safe_globals", None)
    if allow is None:
        return contextlib.nullcontext()
    multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray
    rebuild = multiarray._reconstruct
    # under the names numpy 2 and numpy 1 pickle it by
    names = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct")
    return allow([*_NUMPY_GLOBALS, *((rebuild, name) for name in names)])


def _legacy_problem(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "Weights only load failed" in text:  # the restricted unpickler met something else
        found = re.search(r"GLOBAL (\S+)", text) or re.search(r"operand (\S+)", text)
        what = found.group(1) if found else "an object"
        return (
            f"{path.name} (a checkpoint of an earlier version) holds {what}, which is not "
            "plain data: refused, as loading it could run code"
        )
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{path.name} cannot be read ({type(exc).__name__}: {first})"
