"""Worker processes ("containers"): each imports the handler once and runs one event at a time."""

from __future__ import annotations

import atexit
import contextlib
import decimal
import importlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
import weakref
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from local.lambda_context import DEFAULT_REGION, LambdaContext, function_arn

# Local guard only: how long a new worker may take to import the handler.
WORKER_INIT_TIMEOUT_S = 60.0
# How long a stopping worker gets to exit on its own before it is terminated.
WORKER_EXIT_GRACE_S = 2.0


@dataclass(frozen=True)
class WorkerSpec:
    handler: str
    code_dir: str
    function_name: str
    memory_mb: int
    env: dict[str, str]


def _lambda_json_default(value: Any) -> Any:
    # Lambda's Python runtime serialises Decimal results as numbers.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _lambda_environment(spec: WorkerSpec) -> dict[str, str]:
    """Variables Lambda sets in every execution environment (the function's own come on top)."""
    region = (
        spec.env.get("AWS_REGION") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    region = region or DEFAULT_REGION
    log_stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", region),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
    }


def worker_main(conn: Any, spec: WorkerSpec) -> None:
    """Body of a worker process: import the handler once, then run one event at a time."""
    # The emulator stops its workers itself; a stray Ctrl-C must not kill one mid-request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.update(_lambda_environment(spec))
    os.environ.update(spec.env)
    time.tzset()
    os.chdir(spec.code_dir)
    sys.path.insert(0, spec.code_dir)
    try:
        module_name, function_name = spec.handler.split(":")
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception:  # noqa: BLE001 - any failure of the handler's init is Lambda's init error
        traceback.print_exc()
        conn.send(("init_error", None))
        return
    conn.send(("ready", None))

    region = os.environ["AWS_REGION"]
    arn = function_arn(os.environ["AWS_LAMBDA_FUNCTION_NAME"], region)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        event_json, deadline_ms, aws_request_id, trace_header = message
        os.environ["_X_AMZN_TRACE_ID"] = f"{trace_header};Parent={secrets.token_hex(8)};Sampled=0"
        context = LambdaContext(
            aws_request_id=aws_request_id,
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            function_version=os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
            invoked_function_arn=arn,
            memory_limit_in_mb=os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
            log_group_name=os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
            log_stream_name=os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
            deadline_ms=deadline_ms,
        )
        reply: tuple[str, str | None]
        try:
            result = handler(json.loads(event_json), context)
            reply = ("ok", json.dumps(result, default=_lambda_json_default))
        except Exception:  # noqa: BLE001 - whatever the handler raises, Lambda reports it
            print(f"[ERROR] {aws_request_id} unhandled exception in the handler", file=sys.stderr)
            traceback.print_exc()
            reply = ("error", None)
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send(reply)


class WorkerInitError(RuntimeError):
    """A worker could not import the handler (its traceback is on stderr)."""


class PoolClosedError(RuntimeError):
    """The emulator is stopping: no worker is handed out any more."""


class PoolBusyError(RuntimeError):
    """Every worker stayed busy for as long as the request could wait."""


# A fresh interpreter per container, like multiprocessing's "spawn", but started directly: the
# caller's __main__ is never re-run in it (no main guard needed, no pytest imported into Lambda).
_BOOTSTRAP = """\
import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
sys.path[:] = conn.recv()
from local.emulator.workers import WorkerSpec, worker_main
worker_main(conn, WorkerSpec(**conn.recv()))
"""
_live_workers: weakref.WeakSet[Worker] = weakref.WeakSet()


class Worker:
    """One container: a Python process running ``worker_main``, and the connection to it."""

    def __init__(self, spec: WorkerSpec) -> None:
        parent_socket, child_socket = socket.socketpair()
        with child_socket:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child_socket.fileno())],
                pass_fds=(child_socket.fileno(),),
                start_new_session=True,  # Ctrl-C goes to the emulator, which stops its workers
            )
        self.conn = Connection(parent_socket.detach())
        _live_workers.add(self)
        with contextlib.suppress(OSError):  # a worker that died at once is reported by wait_ready
            self.conn.send([str(Path(entry).resolve()) for entry in sys.path])
            self.conn.send(asdict(spec))  # plain data: this module may be __main__ here

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = WORKER_INIT_TIMEOUT_S) -> None:
        try:
            if not self.conn.poll(timeout_s):
                raise WorkerInitError(f"worker {self.pid} did not import the handler in {timeout_s} s")
            kind, _ = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerInitError(f"worker {self.pid} exited while importing the handler") from exc
        if kind != "ready":
            raise WorkerInitError(f"worker {self.pid} could not import the handler (traceback above)")

    def invoke(self, message: tuple[Any, ...], wait_s: float) -> tuple[str, str | None]:
        """``("ok", result JSON)``, ``("error", None)``, ``("timeout", None)`` or ``("crash", None)``."""
        try:
            self.conn.send(message)
            if not self.conn.poll(max(wait_s, 0.0)):
                return "timeout", None
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            return "crash", None
        return kind, payload

    def ask_to_exit(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()

    def finish(self, grace_s: float) -> None:
        """Wait for the process to end, terminate then kill it if it does not; reap it."""
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.terminate()
            try:
                self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.conn.close()
        _live_workers.discard(self)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.finish(grace_s=1.0)


@atexit.register
def _kill_leftover_workers() -> None:
    for worker in list(_live_workers):
        worker.kill()


class WorkerPool:
    """Up to ``size`` workers; a request takes an idle one, or starts one, or waits."""

    def __init__(self, spec: WorkerSpec, size: int) -> None:
        if size < 1:
            raise ValueError("workers must be at least 1")
        self._spec = spec
        self._size = size
        self._idle: list[Worker] = []  # most recently used last: warm workers are reused first
        self._all: set[Worker] = set()
        self._slots_used = 0
        self._closed = False
        self._cond = threading.Condition()

    def pids(self) -> list[int]:
        with self._cond:
            return sorted(w.pid for w in self._all)

    def prestart(self, count: int) -> None:
        with self._cond:
            count = max(0, min(count, self._size - self._slots_used))
            self._slots_used += count
        workers: list[Worker] = []
        try:
            for started in range(count):
                try:
                    workers.append(self._spawn())
                except BaseException:
                    with self._cond:
                        self._slots_used -= count - started - 1  # the slots never used
                    raise
            for worker in workers:
                worker.wait_ready()
        except BaseException:
            for worker in workers:
                self._discard(worker)
            raise
        with self._cond:
            self._idle.extend(workers)
            self._cond.notify_all()

    def _spawn(self) -> Worker:
        try:
            worker = Worker(self._spec)
        except BaseException:
            with self._cond:
                self._slots_used -= 1
                self._cond.notify()
            raise
        with self._cond:
            closed = self._closed
            if not closed:
                self._all.add(worker)
        if closed:
            worker.kill()
            with self._cond:
                self._slots_used -= 1
            raise PoolClosedError
        return worker

    def _discard(self, worker: Worker, *, graceful: bool = False) -> None:
        with self._cond:
            if worker not in self._all:
                return
            self._all.discard(worker)
            self._slots_used -= 1
            self._cond.notify()
        if graceful:
            worker.ask_to_exit()
            worker.finish(WORKER_EXIT_GRACE_S)
        else:
            worker.kill()

    def acquire(self, wait_s: float) -> Worker:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosedError
                if self._idle:
                    return self._idle.pop()
                if self._slots_used < self._size:
                    self._slots_used += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolBusyError
                self._cond.wait(remaining)
        worker = self._spawn()
        try:
            worker.wait_ready()
        except BaseException:
            self._discard(worker)
            raise
        return worker

    def release(self, worker: Worker, *, reusable: bool) -> None:
        with self._cond:
            if reusable and not self._closed and worker in self._all:
                self._idle.append(worker)
                self._cond.notify()
                return
        self._discard(worker, graceful=reusable)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, workers = list(self._idle), list(self._all)
            self._idle.clear()
            self._all.clear()
            self._cond.notify_all()
        for worker in workers:
            if worker in idle:
                worker.ask_to_exit()
            else:
                worker.terminate()
        for worker in workers:
            worker.finish(WORKER_EXIT_GRACE_S)
