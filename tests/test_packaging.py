"""Packaging: the wheel installs one import package, `sim2real`, with its assets and CLI.

The wheel is built from a clean copy of the sources (no stale ``build/`` can leak into
it) and installed with ``--no-deps`` into a fresh venv made without pip. The project's
dependencies (torch, mujoco, ...) are made visible to that venv by one ``.pth`` line
naming this environment's site-packages, so nothing is reinstalled. Python does not
process ``.pth`` files inside a directory that a ``.pth`` line adds, so this
environment's editable-install finder does not reach the fresh venv; the checks below
assert that imports really come from the fresh venv.

``make wheel-test`` builds the wheel itself and hands it over in ``SIM2REAL_WHEEL``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
SUBPACKAGES = ("sim", "randomization", "policies", "export", "deploy", "sysid")
# Names that must never land at the top of site-packages (DESIGN: Layout).
GENERIC = (*SUBPACKAGES, "tests", "benchmarks", "build", "dist")
# Source folders that are not part of the Python distribution.
NOT_PACKAGED = ("deploy/ros2_ws",)
# Files in the mapped folders that the wheel must carry (code and package data).
SHIPPED_SUFFIXES = (".py", ".xml", ".yaml", ".yml")

PROBE = """
import json, sys
import sim2real, sim2real.sim, sim2real.policies, sim2real.export, sim2real.deploy
import sim2real.sysid, sim2real.randomization
from sim2real.sim.assets import ROBOTS, asset_path
print(json.dumps({
    "files": {m: sys.modules[m].__file__ for m in sorted(sys.modules)
              if m == "sim2real" or m.startswith("sim2real.")},
    "assets": {r: [str(asset_path(r)), asset_path(r).is_file()] for r in ROBOTS},
    "numpy": __import__("numpy").__file__,
}))
"""


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _build_wheel(out: Path) -> Path:
    """Build the project's wheel from a clean copy of the sources that go into it."""
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.py"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(REPO).as_posix()
        return set(junk(folder, names)) | {n for n in names if f"{rel}/{n}" in NOT_PACKAGED}

    for folder in {d.split("/")[0] for d in PACKAGE_DIRS.values()}:
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    dist = out / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=src,
    )
    (wheel,) = dist.glob("sim2real-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("SIM2REAL_WHEEL")
    if given:
        return Path(given).resolve()
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    # Made without pip (fast); this environment's pip installs into it via --python.
    # `python -m venv` bases the new venv on sys._base_executable, not on this venv.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    _run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=venv.parent)
    # Only after the install, so pip does not see this environment's sim2real.
    site = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=venv.parent,
        ).strip()
    )
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_sim2real_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv


def _site_packages(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


def test_wheel_holds_only_the_sim2real_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and tops - dist_info == {"sim2real"}, tops
    # Every module and data file of the mapped folders is in the wheel: a folder added
    # without a `packages` entry, or data without `package-data`, fails here.
    missing = []
    for pkg, folder in PACKAGE_DIRS.items():
        root = REPO / folder
        for f in root.rglob("*"):
            rel = f.relative_to(REPO).as_posix()
            if not f.is_file() or f.suffix not in SHIPPED_SUFFIXES or "__pycache__" in rel:
                continue
            if any(rel == x or rel.startswith(x + "/") for x in NOT_PACKAGED):
                continue
            inside = "/".join((*pkg.split("."), f.relative_to(root).as_posix()))
            if inside not in names:
                missing.append(rel)
    assert not missing, (
        f"not in the wheel (add to [tool.setuptools] packages / package-data): {missing}"
    )


def test_wheel_installs_and_imports_from_fresh_venv(fresh_venv: Path, tmp_path: Path) -> None:
    site = _site_packages(fresh_venv)
    out = _run([str(fresh_venv / "bin" / "python"), "-c", PROBE], cwd=tmp_path)
    probe = json.loads(out.strip().splitlines()[-1])
    for mod, file in probe["files"].items():
        assert Path(file).resolve().is_relative_to(site.resolve()), (mod, file)
    assert probe["files"]["sim2real.sim"] == str(site / "sim2real" / "sim" / "__init__.py")
    for robot, (path, exists) in probe["assets"].items():
        assert Path(path).is_relative_to(site), (robot, path)
        assert exists, f"packaged MJCF asset for {robot!r} missing: {path}"
    # The dependencies come from this environment, through the .pth line.
    assert Path(probe["numpy"]).is_relative_to(sysconfig.get_paths()["purelib"])


def test_no_generic_top_level_packages_leak(fresh_venv: Path) -> None:
    site = _site_packages(fresh_venv)
    entries = {p.name for p in site.iterdir()}
    assert not entries & set(GENERIC), entries
    leftovers = {
        e
        for e in entries
        if e != "sim2real" and not e.endswith((".dist-info", ".pth")) and e != "__pycache__"
    }
    assert not leftovers, f"unexpected top-level entries in site-packages: {leftovers}"


def test_console_script_installed(fresh_venv: Path) -> None:
    script = fresh_venv / "bin" / "sim2real"
    assert script.is_file()
    assert os.access(script, os.X_OK)
    assert script.read_text().splitlines()[0] == f"#!{fresh_venv / 'bin' / 'python'}"
    assert "from sim2real.cli import main" in script.read_text()


def _is_editable() -> bool:
    # Look in site-packages only: an in-tree `sim2real.egg-info` (left by a build) on
    # sys.path would otherwise answer for the installed distribution.
    site = [sysconfig.get_paths()["purelib"]]
    for dist in metadata.distributions(name="sim2real", path=site):
        direct = dist.read_text("direct_url.json")
        if direct and json.loads(direct).get("dir_info", {}).get("editable", False):
            return True
    return False


@pytest.mark.skipif(not _is_editable(), reason="sim2real is not installed editable here")
def test_editable_install_maps_the_repo_folders(tmp_path: Path) -> None:
    out = _run([sys.executable, "-c", PROBE], cwd=tmp_path)
    files = json.loads(out.strip().splitlines()[-1])["files"]
    assert files["sim2real"] == str(REPO / "sim2real" / "__init__.py")
    for sub in SUBPACKAGES:
        assert files[f"sim2real.{sub}"] == str(
            REPO / PACKAGE_DIRS[f"sim2real.{sub}"] / "__init__.py"
        )
