"""The dependency layer: its size, and a Lambda-like set of packages for cold starts on this machine.

Size: `python -m tools.package` (what `make package` runs) builds build/layer.zip and
build/function.zip (both with their bytecode) and writes build/sizes.json; the bench reads that,
so it measures exactly what is deployed.

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


def packaged_sizes() -> dict[str, Any]:
    """Sizes from `python -m tools.package` (build/sizes.json)."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.package"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=PACKAGE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m tools.package failed:\n{done.stderr[-3000:]}")
    sizes: dict[str, Any] = json.loads(SIZES_JSON.read_text())
    return {"layer_source": "tools.package (build/sizes.json)", **sizes}


def layer_sizes() -> dict[str, Any]:
    sizes = packaged_sizes()
    sizes["layer_unzipped_mib"] = sizes["layer_unzipped_bytes"] / MIB
    sizes["layer_zipped_mib"] = sizes["layer_zipped_bytes"] / MIB
    sizes["function_unzipped_mib"] = sizes["function_unzipped_bytes"] / MIB
    sizes["function_zipped_mib"] = sizes["function_zipped_bytes"] / MIB
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
