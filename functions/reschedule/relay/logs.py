"""The doors' Logger: Powertools' JSON lines, with a logged traceback bounded.

A traceback is as long as the bug that raised it makes it: a RecursionError inside a parser once
logged 360 KB on one line, so each hostile request was a bill. The formatted traceback keeps its
head (where it started) and its tail (the exception), MAX_TRACEBACK_CHARACTERS in all; Powertools'
second copy of the frames (`stack_trace`) is not written, the text already has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

if TYPE_CHECKING:
    from types import TracebackType

MAX_TRACEBACK_CHARACTERS = 16 * 1024
# Of the bound, the head's share: the first frames say which door and route it came through.
TRACEBACK_HEAD_CHARACTERS = 4 * 1024
_CUT = "\n... {} characters cut ...\n"


def bounded_traceback(text: str) -> str:
    if len(text) <= MAX_TRACEBACK_CHARACTERS:
        return text
    marker = _CUT.format(len(text))
    tail = MAX_TRACEBACK_CHARACTERS - TRACEBACK_HEAD_CHARACTERS - len(marker)
    return text[:TRACEBACK_HEAD_CHARACTERS] + marker + text[-tail:]


class BoundedFormatter(LambdaPowertoolsFormatter):
    """Powertools' formatter; `exception` holds at most MAX_TRACEBACK_CHARACTERS."""

    def __init__(self) -> None:
        super().__init__(serialize_stacktrace=False)

    def formatException(
        self, ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
    ) -> str:
        return bounded_traceback(super().formatException(ei))


def door_logger() -> Logger:
    """The Logger of a door (one per container); modules below use Logger(child=True) as before."""
    logger = Logger(logger_formatter=BoundedFormatter())
    # A plain Logger() made first for the same service (a module without child=True) set the handler
    # up with Powertools' own formatter, and Powertools does not set it up twice: bound it here.
    if not isinstance(logger.registered_formatter, BoundedFormatter):
        logger.registered_handler.setFormatter(BoundedFormatter())
    return logger
