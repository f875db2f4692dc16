"""A checkpoint's `manifest.json`: every file it holds, with its size and sha256.

The manifest is written last, so a folder without a valid one is incomplete; reading a
checkpoint back compares each file with it, which finds a file truncated, emptied,
overwritten or removed since the save (a full disk, a power cut, a copy that stopped).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = "rlstudio-checkpoint"
VERSION = 1


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_manifest(folder: Path, step: int) -> Path:
    """Lists every file under `folder` (written before: the manifest comes last), then
    writes the manifest under a temporary name and renames it into place."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[path.relative_to(folder).as_posix()] = {
            "size": path.stat().st_size,
            "sha256": sha256_of(path),
        }
    manifest = {"format": FORMAT, "version": VERSION, "step": step, "files": files}
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def manifest_problem(folder: Path) -> str | None:
    """What the manifest finds wrong with the checkpoint in `folder`, or None when every
    file it lists is there with its size and checksum."""
    try:
        files = _listed_files(folder / MANIFEST)
    except ValueError as exc:
        return str(exc)
    for name, expected in files.items():
        problem = _file_problem(folder / name, name, expected)
        if problem:
            return problem
    return None


def _listed_files(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise ValueError(f"{MANIFEST} is missing: the checkpoint is incomplete")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("not a checkpoint manifest")
        for name, entry in files.items():
            int(entry["size"]), str(entry["sha256"])
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"it lists {name}, outside the checkpoint")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{MANIFEST} is damaged ({exc})") from exc
    if manifest.get("version", 0) > VERSION:
        raise ValueError(
            f"{MANIFEST} is of a newer version ({manifest['version']}) than this one reads"
        )
    return files


def _file_problem(path: Path, name: str, expected: dict) -> str | None:
    if not path.is_file():
        return f"{name} is missing"
    size, wanted = path.stat().st_size, int(expected["size"])
    if size < wanted:
        return f"{name} is truncated ({size} of {wanted} bytes)"
    if size > wanted:
        return f"{name} has {size} bytes, {wanted} when it was saved"
    if sha256_of(path) != expected["sha256"]:
        return f"{name} is corrupted (its sha256 differs from the one saved with it)"
    return None
