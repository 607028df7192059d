"""`make package`: the layer and function zips, built for real (pip for CPython 3.13 / arm64).

One build serves every test here (session fixture); only the repeatability test builds a second time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from local.template import REPO_ROOT, load_template
from tools.package import (
    FUNCTION_DIR,
    LAYER_PREFIX,
    PYC_FLAG_HASH_BASED,
    RUNTIME_PROVIDED,
    RUNTIME_PROVIDED_TOP_LEVEL,
    TARGET_CACHE_TAG,
    ZIP_TIMESTAMP,
    canonical_name,
    package,
    read_constraints,
    target_interpreter,
)

LAYER_MAX_UNZIPPED_BYTES = 30 * 2**20
SIZE_KEYS = {"layer_unzipped_bytes", "layer_zipped_bytes", "function_unzipped_bytes", "function_zipped_bytes"}
# CPython 3.13's bytecode magic number (3571), as written at the start of every .pyc it makes.
CPYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"
PYC_HEADER_BYTES = 16
IMPORT_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    package(out)
    return out


@pytest.fixture(scope="session")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package-again")
    package(out)
    return out


def _names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


def _pyc_for(source: str) -> str:
    path = PurePosixPath(source)
    return str(path.parent / "__pycache__" / f"{path.stem}.{TARGET_CACHE_TAG}.pyc")


@pytest.mark.parametrize("artifact", ["layer.zip", "function.zip"])
def test_building_twice_gives_identical_zips(built: Path, rebuilt: Path, artifact: str) -> None:
    # Bytecode included: compiled with a fixed hash seed and the deployed paths, not the scratch ones.
    assert (built / artifact).read_bytes() == (rebuilt / artifact).read_bytes()


@pytest.mark.parametrize("artifact", ["layer.zip", "function.zip"])
def test_entries_are_sorted_files_with_fixed_times_and_modes(built: Path, artifact: str) -> None:
    with zipfile.ZipFile(built / artifact) as archive:
        infos = archive.infolist()

    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert all(not i.is_dir() for i in infos)
    assert {i.date_time for i in infos} == {ZIP_TIMESTAMP}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}


@pytest.mark.parametrize("artifact", ["layer.zip", "function.zip"])
def test_every_module_has_its_unchecked_cpython313_bytecode(built: Path, artifact: str) -> None:
    with zipfile.ZipFile(built / artifact) as archive:
        names = set(archive.namelist())
        sources = sorted(name for name in names if name.endswith(".py"))
        compiled = sorted(name for name in names if name.endswith(".pyc"))
        headers = {name: archive.read(name)[:PYC_HEADER_BYTES] for name in compiled}
        hashes_match = {
            name: archive.read(_pyc_for(name))[8:16] == importlib.util.source_hash(archive.read(name))
            for name in sources
        }

    assert sources
    # Exactly one .pyc per .py, the runtime's cache tag, no stray or optimised bytecode.
    assert compiled == sorted(_pyc_for(name) for name in sources)
    for name, header in headers.items():
        assert header[:4] == CPYTHON_313_MAGIC, name
        # PEP 552 flags: hash-based, check_source off (zip timestamps are fixed, the tree read-only).
        assert int.from_bytes(header[4:8], "little") == PYC_FLAG_HASH_BASED, name
    if sys.version_info[:2] == (3, 13):  # the hash's key is the running interpreter's magic number
        assert all(hashes_match.values()), [name for name, ok in hashes_match.items() if not ok]


def test_sizes_json_describes_the_zips(built: Path) -> None:
    sizes = json.loads((built / "sizes.json").read_text())

    assert set(sizes) == SIZE_KEYS
    assert all(type(value) is int for value in sizes.values())
    for artifact in ("layer", "function"):
        with zipfile.ZipFile(built / f"{artifact}.zip") as archive:
            assert sizes[f"{artifact}_unzipped_bytes"] == sum(i.file_size for i in archive.infolist())
        assert sizes[f"{artifact}_zipped_bytes"] == (built / f"{artifact}.zip").stat().st_size


def test_layer_is_lean_and_under_python(built: Path) -> None:
    names = _names(built / "layer.zip")
    top_level = {name.split("/")[1] for name in names}
    distributions = {
        canonical_name(entry.removesuffix(".dist-info").partition("-")[0])
        for entry in top_level
        if entry.endswith(".dist-info")
    }

    assert all(name.startswith(f"{LAYER_PREFIX}/") for name in names)
    assert not top_level & RUNTIME_PROVIDED_TOP_LEVEL
    assert not distributions & RUNTIME_PROVIDED
    assert "bin" not in top_level  # console scripts carry this machine's interpreter path
    assert json.loads((built / "sizes.json").read_text())["layer_unzipped_bytes"] <= LAYER_MAX_UNZIPPED_BYTES
    # What the relay imports is there, at the pinned versions.
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "httpx", "tzdata"} <= distributions
    assert distributions <= set(read_constraints())


def test_layer_binaries_are_for_lambda_arm64_python313(built: Path) -> None:
    shared_objects = [name for name in _names(built / "layer.zip") if ".so" in name]

    assert shared_objects  # pydantic-core at least
    assert all("cpython-313-aarch64-linux-gnu" in name or "abi3" in name for name in shared_objects)


def test_function_zip_holds_exactly_the_code_and_its_bytecode(built: Path) -> None:
    sources = sorted(
        path.relative_to(FUNCTION_DIR).as_posix()
        for path in FUNCTION_DIR.rglob("*.py")
        if "__pycache__" not in path.parts
    )

    assert sorted(_names(built / "function.zip")) == sorted(sources + [_pyc_for(name) for name in sources])
    assert "app.py" in sources


def test_cpython313_imports_the_shipped_bytecode_from_a_read_only_tree(built: Path, tmp_path: Path) -> None:
    # Given the function zip extracted read-only, with one module's source changed after the build
    task = tmp_path / "task"
    with zipfile.ZipFile(built / "function.zip") as archive:
        archive.extractall(task)
    errors = task / "relay" / "errors.py"
    errors.write_text(errors.read_text() + "\nraise SystemExit('the source was compiled at import')\n")
    for path in sorted(task.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    env = {"PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ.get("PATH", "")}

    # When CPython 3.13 imports it, as Lambda does (-v: the import system says what it loaded)
    try:
        done = subprocess.run(  # noqa: S603 - CPython 3.13 on our own module
            [target_interpreter(), "-S", "-P", "-v", "-c", "import relay.errors"],
            env=env,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        for path in task.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        task.chmod(0o755)

    # Then the .pyc is used as is: no compile, no check against the (changed) source
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"code object from '{task}/relay/__pycache__/errors.cpython-313.pyc'" in done.stderr
    assert not list(task.rglob("*.cpython-313.opt-*.pyc"))


def test_sam_builds_both_artifacts_with_the_packager() -> None:
    # sam build's own Python workflow strips .pyc files: both resources use the Makefile's targets.
    resources = load_template()["Resources"]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")

    for logical_id, flag in (("DependenciesLayer", "--layer-dir"), ("RescheduleFunction", "--function-dir")):
        metadata = resources[logical_id]["Metadata"]
        assert {key: metadata[key] for key in ("BuildMethod", "BuildArchitecture", "ContextPath")} == {
            "BuildMethod": "makefile",
            "BuildArchitecture": "arm64",
            "ContextPath": ".",
        }
        recipe = rf"^build-{logical_id}:\n\t.*-m tools\.package {flag} \"\$\(ARTIFACTS_DIR\)\""
        assert re.search(recipe, makefile, re.MULTILINE), logical_id
