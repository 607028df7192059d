"""`make package`: the layer and function zips, built for real (pip for CPython 3.13 / arm64), twice."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from local.package import (
    FUNCTION_DIR,
    LAYER_PREFIX,
    RUNTIME_PROVIDED,
    RUNTIME_PROVIDED_TOP_LEVEL,
    ZIP_TIMESTAMP,
    canonical_name,
    package,
    read_constraints,
)

LAYER_MAX_UNZIPPED_BYTES = 15 * 2**20
SIZE_KEYS = {"layer_unzipped_bytes", "layer_zipped_bytes", "function_unzipped_bytes", "function_zipped_bytes"}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    package(first)
    package(second)
    return first, second


def _names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


@pytest.mark.parametrize("artifact", ["layer.zip", "function.zip"])
def test_building_twice_gives_identical_zips(builds: tuple[Path, Path], artifact: str) -> None:
    first, second = builds

    assert (first / artifact).read_bytes() == (second / artifact).read_bytes()


@pytest.mark.parametrize("artifact", ["layer.zip", "function.zip"])
def test_entries_are_sorted_files_with_fixed_times_and_modes(
    builds: tuple[Path, Path], artifact: str
) -> None:
    with zipfile.ZipFile(builds[0] / artifact) as archive:
        infos = archive.infolist()

    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert all(not i.is_dir() for i in infos)
    assert {i.date_time for i in infos} == {ZIP_TIMESTAMP}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}
    assert not [i.filename for i in infos if "__pycache__" in i.filename or i.filename.endswith(".pyc")]


def test_sizes_json_describes_the_zips(builds: tuple[Path, Path]) -> None:
    out = builds[0]
    sizes = json.loads((out / "sizes.json").read_text())

    assert set(sizes) == SIZE_KEYS
    assert all(type(value) is int for value in sizes.values())
    for artifact in ("layer", "function"):
        with zipfile.ZipFile(out / f"{artifact}.zip") as archive:
            assert sizes[f"{artifact}_unzipped_bytes"] == sum(i.file_size for i in archive.infolist())
        assert sizes[f"{artifact}_zipped_bytes"] == (out / f"{artifact}.zip").stat().st_size


def test_layer_is_lean_and_under_python(builds: tuple[Path, Path]) -> None:
    out = builds[0]
    names = _names(out / "layer.zip")
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
    assert json.loads((out / "sizes.json").read_text())["layer_unzipped_bytes"] <= LAYER_MAX_UNZIPPED_BYTES
    # What the relay imports is there, at the pinned versions.
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "httpx", "tzdata"} <= distributions
    assert distributions <= set(read_constraints())


def test_layer_binaries_are_for_lambda_arm64_python313(builds: tuple[Path, Path]) -> None:
    shared_objects = [name for name in _names(builds[0] / "layer.zip") if ".so" in name]

    assert shared_objects  # pydantic-core at least
    assert all("cpython-313-aarch64-linux-gnu" in name or "abi3" in name for name in shared_objects)


def test_function_zip_holds_exactly_the_code(builds: tuple[Path, Path]) -> None:
    expected = sorted(
        path.relative_to(FUNCTION_DIR).as_posix()
        for path in FUNCTION_DIR.rglob("*.py")
        if "__pycache__" not in path.parts
    )

    assert _names(builds[0] / "function.zip") == expected
    assert "app.py" in expected
