"""The doors' Tracer: the X-Ray SDK is loaded only when tracing is on.

Powertools' Tracer loads the X-Ray SDK (with wrapt and asyncio) even when tracing is disabled, only
to tell it to do nothing: tens of milliseconds of cold start. Disabled (POWERTOOLS_TRACE_DISABLED,
or outside Lambda, by Powertools' own rule), the Tracer gets `NoTracing`, a provider that does
nothing without loading it. On (template.yaml's `Tracing: Active`), the X-Ray SDK as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any, TypeVar

import httpx
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

# X-Ray's httpx patch replaces httpx.Client and AsyncClient with subclasses from its own package.
_XRAY_PACKAGE = "aws_xray_sdk"
ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class NoTracing(BaseProvider):
    """A provider for a disabled Tracer: every segment is a no-op, nothing is sent or patched."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(
        self, name: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[BaseSegment, None]:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


def door_tracer(patch_modules: Sequence[str]) -> Tracer:
    """The Tracer of a door (one per container), patching only `patch_modules` when tracing is on."""
    # Powertools' own decision (the env var, or not in Lambda), before it picks its provider.
    disabled = bool(Tracer._is_tracer_disabled())
    return Tracer(patch_modules=list(patch_modules), provider=NoTracing() if disabled else None)


def untraced(client_class: type[ClientT]) -> type[ClientT]:
    """The httpx client class beneath X-Ray's instrumentation: a callback URL's path can be a credential.

    With tracing on, `patch_modules=["httpx"]` replaces `httpx.Client` and `httpx.AsyncClient` with
    subclasses that record each request's URL, path included, in a subsegment (and send a trace
    header to the receiver). A client of the class returned here is neither recorded nor marked.
    """
    while client_class.__module__.startswith(_XRAY_PACKAGE):
        client_class = client_class.__bases__[0]
    return client_class
