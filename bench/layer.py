"""The dependency layer: its size, and a Lambda-like set of packages for cold starts on this machine.

Size: `python -m local.package` builds build/layer.zip and writes build/sizes.json when the repository
has it; until then (FALLBACK, to be replaced by local.package when merging) the layer is built here
the way Lambda would get it: layers/requirements.txt installed for python3.13 / arm64 into
`python/`, minus the packages the Lambda runtime already ships, zipped.

Cold starts: the dev virtualenv holds many packages the layer does not (rich, click, trio, ...)
and some libraries import whatever is installed (httpx imports its CLI when rich and click are
there), so a cold start measured in it is not Lambda's. `lambda_site()` installs the layer's
requirements and the runtime's boto3 for THIS machine into .local/bench/ (once, reused), and the
cold-start children run with only those on sys.path, as in Lambda (/var/task, /opt/python, runtime).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.template import REPO_ROOT

LAYER_REQUIREMENTS = REPO_ROOT / "layers" / "requirements.txt"
SIZES_JSON = REPO_ROOT / "build" / "sizes.json"
SITE_CACHE = REPO_ROOT / ".local" / "bench"
PIP_TIMEOUT_SECONDS = 600
PACKAGE_TIMEOUT_SECONDS = 900
# The Lambda python3.13 runtime ships these (boto3 and what it needs): a layer must not carry them.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")
_RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python_dateutil", "six")
LAMBDA_PLATFORM_ARGS = (
    "--platform",
    "manylinux2014_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    "3.13",
    "--only-binary=:all:",
)
MIB = 1024 * 1024


def _pip_install(target: Path, args: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    done = subprocess.run(  # noqa: S603 - our own interpreter's pip
        [*command, "--target", str(target), *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {target} failed:\n{done.stderr[-3000:]}")


def _tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def _zip_tree(root: Path, archive: Path) -> None:
    """Zip `root`'s contents (deflate, level 6 as `zip -r` does), paths relative to root's parent."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as out:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(root.parent))


def _remove_runtime_provided(site: Path) -> None:
    names = {name.lower() for name in RUNTIME_PROVIDED}
    distributions = {name.lower() for name in _RUNTIME_DISTRIBUTIONS}
    for entry in site.iterdir():
        stem = entry.name.lower()
        if stem.endswith(".dist-info"):
            doomed = stem.split("-", 1)[0] in distributions
        else:
            doomed = stem.removesuffix(".py") in names
        if doomed:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _largest_packages(site: Path, count: int = 8) -> dict[str, float]:
    sizes = {
        entry.name: (_tree_bytes(entry) if entry.is_dir() else entry.stat().st_size)
        for entry in site.iterdir()
        if not entry.name.endswith(".dist-info")
    }
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:count]
    return {name: round(size / MIB, 2) for name, size in largest}


def fallback_layer_sizes() -> dict[str, Any]:
    """FALLBACK until local.package exists: build the arm64 layer in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as tmp:
        site = Path(tmp) / "python"
        _pip_install(site, ["-r", str(LAYER_REQUIREMENTS), *LAMBDA_PLATFORM_ARGS])
        _remove_runtime_provided(site)
        archive = Path(tmp) / "layer.zip"
        _zip_tree(site, archive)
        return {
            "layer_source": "FALLBACK bench.layer: pip for manylinux2014_aarch64, minus runtime packages",
            "layer_unzipped_bytes": _tree_bytes(site),
            "layer_zipped_bytes": archive.stat().st_size,
            "layer_largest_mib": _largest_packages(site),
        }


def packaged_sizes() -> dict[str, Any]:
    """Sizes from `python -m local.package` (build/sizes.json)."""
    done = subprocess.run(
        [sys.executable, "-m", "local.package"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=PACKAGE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m local.package failed:\n{done.stderr[-3000:]}")
    sizes: dict[str, Any] = json.loads(SIZES_JSON.read_text())
    return {"layer_source": "local.package (build/sizes.json)", **sizes}


def layer_sizes() -> dict[str, Any]:
    has_packager = (REPO_ROOT / "local" / "package.py").exists()
    sizes = packaged_sizes() if has_packager else fallback_layer_sizes()
    sizes["layer_unzipped_mib"] = sizes["layer_unzipped_bytes"] / MIB
    sizes["layer_zipped_mib"] = sizes["layer_zipped_bytes"] / MIB
    return sizes


@dataclass(frozen=True)
class LambdaSite:
    layer: Path  # as /opt/python
    runtime: Path  # boto3 and what it needs, as the Lambda runtime ships them

    def python_path(self) -> list[str]:
        return [str(self.layer), str(self.runtime)]


def lambda_site() -> LambdaSite:
    """The layer's requirements and the runtime's boto3, for this machine; built once, then reused."""
    boto3_version = importlib.metadata.version("boto3")
    fingerprint = hashlib.sha256(
        LAYER_REQUIREMENTS.read_bytes() + f"{sys.version}|boto3=={boto3_version}".encode()
    ).hexdigest()[:16]
    root = SITE_CACHE / f"site-{fingerprint}"
    site = LambdaSite(layer=root / "layer" / "python", runtime=root / "runtime")
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        _pip_install(site.layer, ["-r", str(LAYER_REQUIREMENTS)])
        _remove_runtime_provided(site.layer)
        _pip_install(site.runtime, [f"boto3=={boto3_version}"])
        (root / ".complete").write_text("")
    return site
