"""Child server processes of the local stack (DynamoDB Local, moto's server): started in their own
process group, probed until they answer, stopped with everything they started.

`launch()` starts one and waits for it; `LocalServer` is the running process (`.endpoint`, `.stop()`).
The readiness probes are boto3 calls, hence the dummy client settings here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.template import REPO_ROOT

# Where the local servers keep their logs, downloads and data unless told otherwise.
DEFAULT_CACHE_DIR = REPO_ROOT / ".local"

# A JVM (DynamoDB Local) on a busy 2-core machine can take well over 30 s to answer its first probe.
STARTUP_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
_POLL_INTERVAL_SECONDS = 0.1
# Each start logs to <name>-<port>.log; older logs than this are pruned so .local/logs stays small.
LOG_MAX_AGE_SECONDS = 24 * 3600
# An auto-picked port can be taken between picking and binding; try a few before giving up.
_PORT_ATTEMPTS = 3

# Emulators accept any credentials; fixed dummy ones keep real ones from ever being sent.
DUMMY_CLIENT_SETTINGS: dict[str, str] = {
    "region_name": "us-east-1",
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
}
# Readiness probes: fail fast and let the polling loop retry.
PROBE_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})


class StartupFailed(RuntimeError):
    """A local server exited or did not answer in time; the message ends with its log's tail."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that is free right now on host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _prune_logs(log_dir: Path, name: str) -> None:
    cutoff = time.time() - LOG_MAX_AGE_SECONDS
    for old in log_dir.glob(f"{name}-*.log"):
        with contextlib.suppress(OSError):  # a concurrent prune got there first
            if old.stat().st_mtime < cutoff:
                old.unlink()


def _log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalServer:
    """A child server process in its own process group: ``.endpoint``, ``.port``, ``.pid``, ``.stop()``."""

    def __init__(self, process: subprocess.Popen[bytes], *, host: str, port: int, log_path: Path) -> None:
        self._process = process
        self.host = host
        self.port = port
        self.log_path = log_path
        self.endpoint = f"http://{host}:{port}"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def wait_until_ready(self, probe: Callable[[], object], timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Call probe until it succeeds; StartupFailed if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise StartupFailed(
                    f"{self.endpoint}: process exited with {self._process.returncode}; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}",
                    exited=True,
                )
            try:
                probe()
            except (BotoCoreError, ClientError, OSError):  # not ready yet; the deadline bounds it
                if time.monotonic() >= deadline:
                    self.stop()
                    raise StartupFailed(
                        f"{self.endpoint}: no answer within {timeout:.0f} s; "
                        f"log {self.log_path}:\n{_log_tail(self.log_path)}",
                        exited=False,
                    ) from None
                time.sleep(_POLL_INTERVAL_SECONDS)
            else:
                return

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Terminate the process group, kill it if it lingers, reap the process. Safe to call twice."""
        # poll() reaps an exited leader; after that its group id may be reused, so signal nothing.
        if self._process.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._process.wait(timeout=timeout)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


ServerT = TypeVar("ServerT", bound=LocalServer)


def launch(
    server_class: type[ServerT],
    command: Callable[[int], list[str]],
    *,
    port: int,
    host: str,
    log_dir: Path,
    log_name: str,
    probe: Callable[[str], Callable[[], object]],
    cwd: Path | None = None,
) -> ServerT:
    """Start command(port) in a new process group and wait until probe(endpoint) answers.

    With port 0 a free port is picked, and picked again if the server exits at once (typically
    because another process took the port in between). The server is stopped on any failure,
    Ctrl+C included: it runs in its own session, so the terminal's SIGINT never reaches it.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    _prune_logs(log_dir, log_name)
    attempts = _PORT_ATTEMPTS if port == 0 else 1
    for attempt in range(1, attempts + 1):
        chosen = port or free_port(host)
        log = log_dir / f"{log_name}-{chosen}.log"
        with log.open("ab") as log_file:
            process = _popen(command(chosen), log_file, cwd)
        server = server_class(process, host=host, port=chosen, log_path=log)
        try:
            server.wait_until_ready(probe(server.endpoint))
        except StartupFailed as failure:
            server.stop()
            if attempt == attempts or not failure.exited:
                raise
        except BaseException:
            server.stop()
            raise
        else:
            return server
    raise AssertionError("unreachable")


def _popen(argv: list[str], log_file: IO[bytes], cwd: Path | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,  # own process group: stop() can take down everything it started
    )
