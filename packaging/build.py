"""`make package`: build the one-folder bundle with PyInstaller, then this OS's installer.

    python packaging/build.py            # bundle + installer for the OS it runs on
    python packaging/build.py --test     # ... then run the bundle's --smoke-test
    python packaging/build.py --test --no-installer   # bundle and smoke test only (CI)

Linux: dist/RLStudio-<version>-linux-x86_64.tar.gz (the bundle, the .desktop entry, the icon
and install.sh). Windows: an Inno Setup installer (needs `iscc` on PATH). macOS: the .app
and a .dmg (hdiutil). Writes dist/package-report.json: build time, sizes, smoke-test output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
META = tomllib.loads((ROOT / "assets" / "app" / "metadata.toml").read_text())


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from core import __version__

    return __version__


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def mb(n: int) -> float:
    return round(n / 2**20, 1)


def build_bundle() -> tuple[Path, float]:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--workpath", str(ROOT / "build" / "pyinstaller"), "--distpath", str(DIST),
         str(ROOT / "packaging" / "rlstudio.spec")],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return DIST / META["executable"], time.monotonic() - started


def smoke_test(bundle: Path) -> tuple[int, str]:
    exe = bundle / (META["executable"] + ("-cli.exe" if sys.platform == "win32" else ""))
    if sys.platform == "darwin":
        exe = DIST / f"{META['name']}.app" / "Contents" / "MacOS" / META["executable"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(exe), "--smoke-test"], env=env, capture_output=True, text=True, timeout=900
    )
    output = done.stdout + done.stderr
    print(output, end="")
    return done.returncode, output


def linux_tarball(bundle: Path, ver: str) -> Path:
    """The bundle plus what a desktop needs: a .desktop entry, the icon, and install.sh."""
    name = f"RLStudio-{ver}-linux-{platform.machine()}"
    desktop = (ROOT / "packaging" / "linux" / "rlstudio.desktop.in").read_text()
    desktop = desktop.format(**META, version=ver)
    out = DIST / f"{name}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=f"{name}/{META['executable']}")
        tar.add(ROOT / "assets" / "app" / "rlstudio.png", arcname=f"{name}/rlstudio.png")
        tar.add(ROOT / "packaging" / "linux" / "install.sh", arcname=f"{name}/install.sh")
        staged = DIST / f"{META['id']}.desktop"
        staged.write_text(desktop)
        tar.add(staged, arcname=f"{name}/{META['id']}.desktop")
    return out


def windows_installer(ver: str) -> Path:
    iscc = shutil.which("iscc") or shutil.which("ISCC")
    if iscc is None:
        raise SystemExit("Inno Setup's iscc is not on PATH: install Inno Setup 6, then rerun")
    defines = {
        "AppName": META["name"], "AppVersion": ver, "AppPublisher": META["publisher"],
        "AppURL": META["homepage"], "AppExe": META["executable"],
        "AppGuid": META["windows_app_id"], "Root": str(ROOT),
    }  # fmt: skip
    args = [f"/D{k}={v}" for k, v in defines.items()]
    subprocess.run([iscc, *args, str(ROOT / "packaging" / "windows" / "rlstudio.iss")], check=True)
    return DIST / f"RLStudio-{ver}-windows-setup.exe"


def mac_dmg(ver: str) -> Path:
    out = DIST / f"RLStudio-{ver}-macos-{platform.machine()}.dmg"
    script = ROOT / "packaging" / "macos" / "make_dmg.sh"
    subprocess.run(["bash", str(script), str(DIST / f"{META['name']}.app"), str(out)], check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", action="store_true", help="run the bundle's --smoke-test")
    parser.add_argument("--no-installer", action="store_true", help="stop after the bundle")
    args = parser.parse_args()
    ver = version()
    bundle, seconds = build_bundle()
    report: dict = {
        "version": ver,
        "platform": f"{sys.platform}-{platform.machine()}",
        "python": platform.python_version(),
        "build_seconds": round(seconds, 1),
        "bundle": str(bundle.relative_to(ROOT)),
        "bundle_mb": mb(folder_size(bundle)),
    }
    print(f"bundle: {bundle} ({report['bundle_mb']} MB) built in {seconds:.0f} s")
    if not args.no_installer:
        started = time.monotonic()
        if sys.platform.startswith("linux"):
            installer = linux_tarball(bundle, ver)
        elif sys.platform == "win32":
            installer = windows_installer(ver)
        else:
            installer = mac_dmg(ver)
        report["installer"] = str(installer.relative_to(ROOT))
        report["installer_mb"] = mb(installer.stat().st_size)
        report["installer_seconds"] = round(time.monotonic() - started, 1)
        print(f"installer: {installer} ({report['installer_mb']} MB)")
    code = 0
    if args.test:
        started = time.monotonic()
        code, output = smoke_test(bundle)
        report["smoke_test"] = {
            "exit_code": code,
            "seconds": round(time.monotonic() - started, 1),
            "output": output.splitlines(),
        }
    (DIST / "package-report.json").write_text(json.dumps(report, indent=1) + "\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
