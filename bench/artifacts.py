"""The artifacts Lambda runs, laid out on this machine for cold starts "as deployed".

- layer: a host-architecture twin of the deployed layer, built by `tools.package` from the same
  lock file (layers/constraints.txt: same versions, this machine's wheels), with its bytecode;
- function: `tools.package`'s function tree, with its bytecode (rebuilt each run: the code moves);
- runtime: boto3 at the dev pin with the lock's botocore and friends, precompiled, standing in for
  the Lambda runtime's own (which ships its bytecode);
- each also without bytecode (every .pyc removed), the "before" of issue 11;
- the peer (bench/peer/: the same job the way Powertools' docs teach it) as a function tree of its
  own, with its bytecode, on the same layer and runtime.

Every tree is made read-only, as /opt and /var/task are; the children also run with
PYTHONDONTWRITEBYTECODE=1, so nothing they import leaves bytecode behind. The layer and runtime
are cached in .local/bench/ under a fingerprint of the lock, the requirements and the interpreter.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local.template import REPO_ROOT
from tools import package

PEER_SOURCE = Path(__file__).resolve().parent / "peer"
CACHE_DIR = REPO_ROOT / ".local" / "bench"
RUNTIME_MOUNT = "/var/runtime"
PIP_TIMEOUT_SECONDS = 900
INTERPRETER_TIMEOUT_SECONDS = 30
READ_ONLY_DIR, READ_ONLY_FILE = 0o555, 0o444
WRITABLE_DIR, WRITABLE_FILE = 0o755, 0o644


@dataclass(frozen=True)
class Deployed:
    """One way of laying out the artifacts: the directories a cold-start child puts on its path."""

    function: Path  # as /var/task (also the working directory)
    layer: Path  # as /opt/python
    runtime: Path  # as the runtime's boto3
    interpreter: str  # CPython 3.13

    def python_path(self) -> list[str]:
        return [str(self.function), str(self.layer), str(self.runtime)]


def set_read_only(root: Path, *, read_only: bool = True) -> None:
    directory, regular = (READ_ONLY_DIR, READ_ONLY_FILE) if read_only else (WRITABLE_DIR, WRITABLE_FILE)
    # Files first, then folders deepest first, so a read-only folder never blocks its own contents.
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(directory)
        else:
            # Shared objects keep their executable bit.
            path.chmod(regular | (0o111 if path.stat().st_mode & 0o100 else 0))
    root.chmod(directory)


def _remove(root: Path) -> None:
    if root.exists():
        set_read_only(root, read_only=False)
        shutil.rmtree(root)


def _strip_bytecode(root: Path) -> None:
    for cache in [p for p in root.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache)


def _interpreter_version(interpreter: str) -> str:
    done = subprocess.run(  # noqa: S603 - CPython 3.13 found by tools.package
        [interpreter, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        timeout=INTERPRETER_TIMEOUT_SECONDS,
        check=True,
    )
    return done.stdout.strip()


def _install_runtime(target: Path, boto3_version: str) -> None:
    """boto3 with the lock's botocore, s3transfer, urllib3, ... for this machine, then compiled;
    and snapshot_restore_py, which the runtime ships too (the handler registers its SnapStart hook)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter's pip
        [
            package.target_interpreter(),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(target),
            "--constraint",
            str(package.LAYER_CONSTRAINTS),
            f"boto3=={boto3_version}",
            f"snapshot-restore-py=={importlib.metadata.version('snapshot-restore-py')}",
        ],
        env={"PIP_CACHE_DIR": str(package.PIP_CACHE_DIR), **os.environ},
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install of the runtime's boto3 failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(target / "bin", ignore_errors=True)
    package.compile_tree(target, RUNTIME_MOUNT)


def _cached_dependencies(interpreter: str) -> tuple[Path, Path]:
    """(layer with bytecode, runtime): built once per lock, requirements and interpreter."""
    boto3_version = importlib.metadata.version("boto3")
    fingerprint = hashlib.sha256(
        package.LAYER_CONSTRAINTS.read_bytes()
        + package.LAYER_REQUIREMENTS.read_bytes()
        + f"{_interpreter_version(interpreter)}|{package.HOST_PLATFORM}|boto3=={boto3_version}".encode()
        + importlib.metadata.version("snapshot-restore-py").encode()
    ).hexdigest()[:16]
    root = CACHE_DIR / f"deployed-{fingerprint}"
    layer, runtime = root / "layer" / package.LAYER_PREFIX, root / "runtime"
    if not (root / ".complete").exists():
        _remove(root)
        package.build_layer_tree(root / "layer", platform_tag=package.HOST_PLATFORM)
        _install_runtime(runtime, boto3_version)
        set_read_only(root / "layer")
        set_read_only(runtime)
        (root / ".complete").write_text("")
    return layer, runtime


def _copy_without_bytecode(source: Path, target: Path) -> Path:
    _remove(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    set_read_only(target, read_only=False)
    _strip_bytecode(target)
    set_read_only(target)
    return target


def build_peer_tree(target: Path) -> Path:
    """The peer's function tree, compiled as `tools.package` compiles the relay's, read-only."""
    _remove(target)
    shutil.copytree(PEER_SOURCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    package.compile_tree(target, package.FUNCTION_MOUNT)
    set_read_only(target)
    return target


def prepare_peer() -> Deployed:
    """The peer alone, as deployed (`python -m bench --only peer`)."""
    interpreter = package.target_interpreter()
    layer, runtime = _cached_dependencies(interpreter)
    peer = build_peer_tree(CACHE_DIR / "deployed-run" / "peer")
    return Deployed(function=peer, layer=layer, runtime=runtime, interpreter=interpreter)


def prepare() -> dict[str, Deployed]:
    """{"pyc": as shipped, "nopyc": the same trees without bytecode, "peer": the peer's tree with its
    bytecode}; all on the same layer (with and without bytecode) and runtime (boto3 compiled)."""
    interpreter = package.target_interpreter()
    layer, runtime = _cached_dependencies(interpreter)
    work = CACHE_DIR / "deployed-run"
    function = work / "function"
    _remove(function)
    package.build_function_tree(function)
    set_read_only(function)
    peer = build_peer_tree(work / "peer")
    layer_nopyc = work / "layer-nopyc" / package.LAYER_PREFIX
    if not layer_nopyc.exists() or (layer_nopyc.parent / "from").read_text() != str(layer):
        _remove(layer_nopyc.parent)
        layer_nopyc.parent.mkdir(parents=True)
        _copy_without_bytecode(layer, layer_nopyc)
        (layer_nopyc.parent / "from").write_text(str(layer))
    return {
        "pyc": Deployed(function=function, layer=layer, runtime=runtime, interpreter=interpreter),
        "nopyc": Deployed(
            function=_copy_without_bytecode(function, work / "function-nopyc"),
            layer=layer_nopyc,
            runtime=runtime,
            interpreter=interpreter,
        ),
        "peer": Deployed(function=peer, layer=layer, runtime=runtime, interpreter=interpreter),
    }
