"""The distribution holds every package the bot imports (an editable install would hide a gap)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("market", "alerts", "bot")


def test_the_wheel_contains_every_package_of_the_bot(tmp_path: Path) -> None:
    # Built from a clean copy: a build/ folder left in a checkout would mask a package missing from the list.
    source = tmp_path / "src"
    for name in SOURCES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    packages = {str(p.parent.relative_to(source)) for p in source.glob("**/__init__.py")}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("capgap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bot/commands", "bot", "alerts", "market"} <= packages
    for package in packages:
        assert f"{package}/__init__.py" in names, package
