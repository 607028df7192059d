"""tools/package.py without pip: repeatable zips and pruning of what the Lambda runtime ships."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from tools.package import (
    PackagingError,
    canonical_name,
    check_locked,
    deterministic_zip,
    installed_distributions,
    prune_runtime_provided,
)


def _tree(root: Path, mtime: int, mode: int) -> Path:
    for relative, content in {
        "pkg/__init__.py": "",
        "pkg/core.py": "VALUE = 1\n",
        "pkg/_speed.cpython-313-aarch64-linux-gnu.so": "\x7fELF",
        "pkg/__pycache__/core.cpython-313.pyc": "cache",
        "top.py": "import pkg\n",
    }.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    return root


def test_same_files_give_the_same_bytes_whatever_their_times_and_modes(tmp_path: Path) -> None:
    # Given two copies of one tree, touched at different times with different permissions
    first = _tree(tmp_path / "a", mtime=1_700_000_000, mode=0o600)
    second = _tree(tmp_path / "b", mtime=1_800_000_000, mode=0o755)

    # When each is zipped
    size_a = deterministic_zip(first, tmp_path / "a.zip", prefix="python")
    size_b = deterministic_zip(second, tmp_path / "b.zip", prefix="python")

    # Then the zips are identical, sorted, cache-free, and the sizes say so
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert size_a == size_b
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
    assert list(modes) == [
        "python/pkg/__init__.py",
        "python/pkg/_speed.cpython-313-aarch64-linux-gnu.so",
        "python/pkg/core.py",
        "python/top.py",
    ]
    assert modes["python/pkg/_speed.cpython-313-aarch64-linux-gnu.so"] == 0o755
    assert modes["python/pkg/core.py"] == 0o644
    assert size_a.unzipped_bytes == len("VALUE = 1\n") + len("\x7fELF") + len("import pkg\n")


def _dist(site: Path, dist_info: str, files: dict[str, str]) -> None:
    (site / dist_info).mkdir(parents=True)
    for relative, content in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    record = [f"{relative},," for relative in files] + [f"{dist_info}/RECORD,,", "../bin/outside,,"]
    (site / dist_info / "RECORD").write_text("\n".join(record) + "\n")


def test_pruning_removes_the_runtimes_packages_and_scripts_only(tmp_path: Path) -> None:
    # Given a target with boto's family, python-dateutil, six, a kept package and a console script
    site = tmp_path / "python"
    _dist(site, "botocore-1.40.0.dist-info", {"botocore/__init__.py": "", "botocore/data/x.json": "{}"})
    _dist(site, "python_dateutil-2.9.0.post0.dist-info", {"dateutil/__init__.py": ""})
    _dist(site, "six-1.17.0.dist-info", {"six.py": ""})
    _dist(site, "httpx-0.28.1.dist-info", {"httpx/__init__.py": ""})
    (site / "bin").mkdir()
    (site / "bin" / "httpx").write_text("#!/usr/bin/python3\n")
    outside = tmp_path / "bin" / "outside"
    outside.parent.mkdir()
    outside.write_text("not ours")

    # When the runtime-provided distributions are pruned
    removed = prune_runtime_provided(site)

    # Then only httpx is left, and nothing outside the target was touched
    assert removed == ["botocore", "python-dateutil", "six"]
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()) == [
        "httpx-0.28.1.dist-info/RECORD",
        "httpx/__init__.py",
    ]
    assert installed_distributions(site) == {"httpx": "0.28.1"}
    assert outside.exists()


def test_names_are_compared_canonically() -> None:
    assert canonical_name("Python_Dateutil") == canonical_name("python-dateutil") == "python-dateutil"


def test_an_unpinned_or_moved_distribution_fails_the_build() -> None:
    pins = {"httpx": "0.28.1", "idna": "3.10"}

    check_locked({"httpx": "0.28.1", "idna": "3.10"}, pins)
    with pytest.raises(PackagingError, match=r"not pinned: anyio; other version: idna"):
        check_locked({"httpx": "0.28.1", "idna": "3.11", "anyio": "4.0"}, pins)


def test_a_compiled_tree_keeps_its_bytecode_and_drops_tool_caches(tmp_path: Path) -> None:
    # Given a tree with its compiled __pycache__ and a type checker's cache
    tree = _tree(tmp_path / "tree", mtime=1_700_000_000, mode=0o644)
    (tree / ".mypy_cache").mkdir()
    (tree / ".mypy_cache" / "x.json").write_text("{}")

    # When it is zipped with its bytecode
    deterministic_zip(tree, tmp_path / "t.zip", bytecode=True)

    # Then the .pyc ships and the tool cache does not
    with zipfile.ZipFile(tmp_path / "t.zip") as archive:
        names = archive.namelist()
    assert "pkg/__pycache__/core.cpython-313.pyc" in names
    assert not [name for name in names if ".mypy_cache" in name]
