"""Build the Lambda artifacts reproducibly: the dependency layer and the function code.

    python -m tools.package                     # build/layer.zip, build/function.zip, build/sizes.json
    python -m tools.package --out DIR           # the same into DIR
    python -m tools.package --layer-dir DIR     # only the layer's tree, DIR/python/... (sam build)
    python -m tools.package --function-dir DIR  # only the function's tree, DIR/app.py ... (sam build)
    python -m tools.package --lock              # re-pin every layer distribution in layers/constraints.txt

The layer holds layers/requirements.txt installed for the Lambda runtime (CPython 3.13, arm64,
manylinux2014 wheels only), minus what the Python runtime already ships (boto3 and its own
dependencies), minus console scripts (their shebang names this machine's interpreter).

Both trees carry bytecode: every .py gets its __pycache__/<name>.cpython-313.pyc, compiled by
CPython 3.13 with `--invalidation-mode unchecked-hash`. Lambda's /opt and /var/task are read-only,
so without it every cold start compiles every module from source; and zip entries have a fixed
timestamp, so timestamp-checked bytecode would never validate. Unchecked: the import system uses
the .pyc without reading the source (a deployed artifact never changes under the function).

Zips are byte-for-byte repeatable on one machine: entries sorted, one fixed timestamp, fixed
permissions, no directory entries, no stray caches (bytecode is compiled afresh, with a fixed hash
seed and the deployed paths as file names). (Another zlib build may compress differently.)
Standard library only, so any Python >= 3.11 with pip can run it, as `sam build` does; the
bytecode is always compiled by CPython 3.13 (this interpreter if it is 3.13, else pyenv's, else
python3.13 on PATH).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_REQUIREMENTS = REPO_ROOT / "layers" / "requirements.txt"
LAYER_CONSTRAINTS = REPO_ROOT / "layers" / "constraints.txt"
FUNCTION_DIR = REPO_ROOT / "functions" / "reschedule"
DEFAULT_OUT_DIR = REPO_ROOT / "build"
PIP_CACHE_DIR = REPO_ROOT / ".local" / "cache" / "pip"

# The Lambda runtime and architecture the layer is built for (template.yaml: python3.13, arm64).
TARGET_PLATFORM = "manylinux2014_aarch64"
# The same lock installed with this machine's wheels (the bench's twin of the layer).
HOST_PLATFORM = f"manylinux2014_{platform.machine()}"
TARGET_IMPLEMENTATION = "cp"
TARGET_PYTHON_VERSION = "3.13"
# Where Lambda looks for Python packages inside a layer (/opt/python).
LAYER_PREFIX = "python"
# Where Lambda puts each tree: the file names compiled into the bytecode (tracebacks show them).
LAYER_MOUNT = "/opt/python"
FUNCTION_MOUNT = "/var/task"
# Bytecode: the runtime's interpreter, and the flags word of an unchecked-hash .pyc (PEP 552).
TARGET_CACHE_TAG = "cpython-313"
TARGET_INTERPRETER_GLOBS = ("~/.pyenv/versions/3.13*/bin/python3",)
PYC_FLAG_HASH_BASED = 0b01
PYC_FLAG_CHECK_SOURCE = 0b10
# Frozenset constants are marshalled in hash order: a fixed seed keeps the bytecode repeatable.
COMPILE_HASH_SEED = "0"
_COMPILE_TIMEOUT_SECONDS = 600
# Distributions the Lambda Python runtime already provides: never shipped in the layer.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
)
# Top-level names those distributions install (checked after pruning, whatever their RECORD says).
RUNTIME_PROVIDED_TOP_LEVEL = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py"}
)
# The one timestamp every zip entry gets: the earliest a zip can hold (DOS time starts in 1980).
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
# Shared objects keep an executable mode, as pip installs them.
EXECUTABLE_MODE = 0o755
_UNIX_SYSTEM = 3
_SKIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Caches that never ship, even when the tree's own __pycache__ (compiled here) does.
_TOOL_CACHE_DIRS = _SKIPPED_DIRS - {"__pycache__"}
_PIP_TIMEOUT_SECONDS = 600


class PackagingError(RuntimeError):
    """The layer could not be built as specified (pip failed, a lock is stale, a rule is broken)."""


@dataclass(frozen=True)
class ZipSize:
    unzipped_bytes: int
    zipped_bytes: int


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Python_Dateutil`` and ``python-dateutil`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(site_dir: Path) -> dict[str, str]:
    """``{canonical name: version}`` of every distribution installed in ``site_dir``."""
    found = {}
    for dist_info in site_dir.glob("*.dist-info"):
        name, _, version = dist_info.name.removesuffix(".dist-info").partition("-")
        found[canonical_name(name)] = version
    return dict(sorted(found.items()))


def read_constraints(path: Path = LAYER_CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical_name(name)] = version.strip()
    return pins


def _pip_install(target: Path, *, constraints: Path | None, platform_tag: str = TARGET_PLATFORM) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--platform",
        platform_tag,
        "--implementation",
        TARGET_IMPLEMENTATION,
        "--python-version",
        TARGET_PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-compile",
        "--target",
        str(target),
        "--requirement",
        str(LAYER_REQUIREMENTS),
    ]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    # Downloads are cached inside the repository's ignored .local/ unless the caller chose a cache.
    env = {"PIP_CACHE_DIR": str(PIP_CACHE_DIR), **os.environ}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=_PIP_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        raise PackagingError(f"pip install for the layer failed:\n{result.stderr.strip()}")


def _record_paths(dist_info: Path) -> list[Path]:
    record = dist_info / "RECORD"
    if not record.is_file():
        return []
    with record.open(encoding="utf-8", newline="") as stream:
        return [dist_info.parent / row[0] for row in csv.reader(stream) if row]


def _remove_empty_dirs(root: Path) -> None:
    for directory in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        if not any(directory.iterdir()):
            directory.rmdir()


def prune_runtime_provided(site_dir: Path) -> list[str]:
    """Delete the distributions Lambda's runtime ships, console scripts and caches; return what went."""
    removed = []
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        name = canonical_name(dist_info.name.removesuffix(".dist-info").partition("-")[0])
        if name not in RUNTIME_PROVIDED:
            continue
        for path in _record_paths(dist_info):
            resolved = path.resolve()
            # RECORD may name files outside the target (scripts); only ever delete inside it.
            if resolved.is_relative_to(site_dir.resolve()) and resolved.is_file():
                resolved.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(name)
    for leftover in RUNTIME_PROVIDED_TOP_LEVEL:
        path = site_dir / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    # Console scripts (httpx's CLI, ...): not importable, and their shebang is this machine's Python.
    shutil.rmtree(site_dir / "bin", ignore_errors=True)
    for cache in [p for p in site_dir.rglob("*") if p.name in _SKIPPED_DIRS or p.suffix in _SKIPPED_SUFFIXES]:
        if cache.is_dir():
            shutil.rmtree(cache, ignore_errors=True)
        elif cache.exists():
            cache.unlink()
    _remove_empty_dirs(site_dir)
    return removed


def check_locked(installed: dict[str, str], pins: dict[str, str]) -> None:
    """Every distribution pip chose must be pinned, at that version: otherwise the build is not repeatable."""
    unpinned = sorted(name for name in installed if name not in pins)
    moved = sorted(name for name in installed if name in pins and pins[name] != installed[name])
    if unpinned or moved:
        raise PackagingError(
            "layers/constraints.txt is stale (not pinned: "
            f"{', '.join(unpinned) or '-'}; other version: {', '.join(moved) or '-'}); "
            "run `python -m tools.package --lock` and commit the result"
        )


def target_interpreter() -> str:
    """A CPython 3.13 (the Lambda runtime's version): the bytecode must be its own to be used."""
    if sys.version_info[:2] == (3, 13):
        # The interpreter itself, not a virtualenv's wrapper around it: the same one either way.
        return str(getattr(sys, "_base_executable", sys.executable))
    for pattern in TARGET_INTERPRETER_GLOBS:
        found = sorted(glob.glob(str(Path(pattern).expanduser())))  # noqa: PTH207 - a ~ pattern
        if found:
            return found[-1]
    on_path = shutil.which("python3.13")
    if on_path is None:
        raise PackagingError(
            "CPython 3.13 is needed to compile the bytecode (pyenv install 3.13, or python3.13)"
        )
    return on_path


def compile_tree(root: Path, mount: str) -> None:
    """Write ``__pycache__/*.cpython-313.pyc`` (unchecked-hash) beside every .py under ``root``.

    ``mount`` is where Lambda puts ``root``; compiled-in file names use it, so the bytes do not
    depend on the scratch folder they were built in.
    """
    command = [
        target_interpreter(),
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        "-d",
        mount,
        str(root),
    ]
    env = {**os.environ, "PYTHONHASHSEED": COMPILE_HASH_SEED}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        raise PackagingError(f"compiling {root} failed:\n{(result.stdout + result.stderr).strip()[-3000:]}")


def build_layer_tree(
    layer_root: Path,
    *,
    constraints: Path | None = LAYER_CONSTRAINTS,
    platform_tag: str = TARGET_PLATFORM,
    bytecode: bool = True,
) -> dict[str, str]:
    """Install the layer into ``layer_root/python``; return the distributions kept in it."""
    site_dir = layer_root / LAYER_PREFIX
    if site_dir.exists():
        shutil.rmtree(site_dir)
    site_dir.mkdir(parents=True)
    _pip_install(site_dir, constraints=constraints, platform_tag=platform_tag)
    if constraints is not None:
        check_locked(installed_distributions(site_dir), read_constraints(constraints))
    prune_runtime_provided(site_dir)
    if bytecode:
        compile_tree(site_dir, LAYER_MOUNT)
    return installed_distributions(site_dir)


def build_function_tree(target: Path, *, bytecode: bool = True) -> Path:
    """Copy the function's code (no caches) into ``target`` and compile it; return ``target``."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        FUNCTION_DIR,
        target,
        ignore=shutil.ignore_patterns(*_SKIPPED_DIRS, *(f"*{s}" for s in _SKIPPED_SUFFIXES)),
    )
    if bytecode:
        compile_tree(target, FUNCTION_MOUNT)
    return target


def write_lock(path: Path = LAYER_CONSTRAINTS) -> dict[str, str]:
    """Resolve layers/requirements.txt afresh for the target and pin every distribution pip chose."""
    with tempfile.TemporaryDirectory(prefix="layer-lock-") as scratch:
        site_dir = Path(scratch) / LAYER_PREFIX
        site_dir.mkdir()
        _pip_install(site_dir, constraints=None)
        pins = installed_distributions(site_dir)
    lines = [
        "# Every distribution of the layer, pinned, so builds repeat (CPython 3.13, manylinux2014_aarch64).",
        "# Written by `make lock-layer` (python -m tools.package --lock); do not edit by hand.",
        "# The runtime's own packages (boto3, botocore, ...) are pinned for resolution only:",
        "# they are removed from the layer.",
        *(f"{name}=={version}" for name, version in pins.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pins


def _is_skipped(relative: Path, *, bytecode: bool) -> bool:
    if bytecode:  # the tree's own, freshly compiled __pycache__ ships; tool caches never do
        return any(part in _TOOL_CACHE_DIRS for part in relative.parts) or relative.suffix == ".pyo"
    return any(part in _SKIPPED_DIRS for part in relative.parts) or relative.suffix in _SKIPPED_SUFFIXES


def _mode(path: Path) -> int:
    return EXECUTABLE_MODE if ".so" in path.suffixes else FILE_MODE


def deterministic_zip(
    source_dir: Path, zip_path: Path, *, prefix: str = "", bytecode: bool = False
) -> ZipSize:
    """Zip the files under ``source_dir`` (as ``prefix/<relative path>``) so equal trees give equal bytes.

    With ``bytecode``, ``__pycache__`` and its .pyc files are kept (a tree compiled by `compile_tree`).
    """
    files = sorted(
        (path.relative_to(source_dir).as_posix(), path)
        for path in source_dir.rglob("*")
        if path.is_file() and not _is_skipped(path.relative_to(source_dir), bytecode=bytecode)
    )
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    unzipped = 0
    with zipfile.ZipFile(zip_path, "w") as archive:
        for relative, path in files:
            name = f"{prefix}/{relative}" if prefix else relative
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.create_system = _UNIX_SYSTEM
            info.external_attr = (0o100000 | _mode(path)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return ZipSize(unzipped_bytes=unzipped, zipped_bytes=zip_path.stat().st_size)


def package(out_dir: Path = DEFAULT_OUT_DIR) -> dict[str, int]:
    """Build layer.zip, function.zip and sizes.json into ``out_dir``; return the sizes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="layer-") as scratch:
        layer_root = Path(scratch) / "layer"
        build_layer_tree(layer_root)
        layer = deterministic_zip(
            layer_root / LAYER_PREFIX, out_dir / "layer.zip", prefix=LAYER_PREFIX, bytecode=True
        )
        function_root = build_function_tree(Path(scratch) / "function")
        function = deterministic_zip(function_root, out_dir / "function.zip", bytecode=True)
    sizes = {
        "layer_unzipped_bytes": layer.unzipped_bytes,
        "layer_zipped_bytes": layer.zipped_bytes,
        "function_unzipped_bytes": function.unzipped_bytes,
        "function_zipped_bytes": function.zipped_bytes,
    }
    (out_dir / "sizes.json").write_text(json.dumps(sizes, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return sizes


def _copy_into(tree: Path, target: Path) -> None:
    """Move a built tree into ``target`` (sam build's ARTIFACTS_DIR exists already and may be in use)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tree, target, dirs_exist_ok=True)
    shutil.rmtree(tree)


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output folder (default build/)")
    parser.add_argument("--layer-dir", type=Path, help="only install the layer tree into DIR/python")
    parser.add_argument(
        "--function-dir", type=Path, help="only copy and compile the function's code into DIR"
    )
    parser.add_argument("--lock", action="store_true", help="re-pin layers/constraints.txt")
    args = parser.parse_args(argv)
    try:
        if args.lock:
            pins = write_lock()
            print(f"pinned {len(pins)} distributions in {LAYER_CONSTRAINTS.relative_to(REPO_ROOT)}")
        elif args.layer_dir is not None:
            kept = build_layer_tree(args.layer_dir)
            print(f"layer tree in {args.layer_dir / LAYER_PREFIX}: {', '.join(kept)}")
        elif args.function_dir is not None:
            _copy_into(build_function_tree(Path(tempfile.mkdtemp(prefix="function-"))), args.function_dir)
            print(f"function tree (with bytecode) in {args.function_dir}")
        else:
            sizes = package(args.out)
            for artifact in ("layer", "function"):
                print(
                    f"{artifact + '.zip':<13} unzipped {_mib(sizes[f'{artifact}_unzipped_bytes']):>10}"
                    f"   zipped {_mib(sizes[f'{artifact}_zipped_bytes']):>10}"
                )
            print(f"sizes in {args.out / 'sizes.json'}")
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
