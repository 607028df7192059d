"""A sandbox's bookings kept in a file, so the local stack agrees with itself across restarts.

The relay's attempt history lives in DynamoDB Local's files under `.local/`; a sandbox that reseeded
on every start would contradict it (Cal.com: the history follows a uid the reseeded sandbox no longer
knows). With a state file, a sandbox restores its bookings at start and writes them after every
change it commits. The file is JSON: each booking's changeable fields, times as ISO 8601.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

_DATETIME = "$datetime"
# Fields a booking object derives from its seed (rebuilt at start, never stored).
_SEED_FIELD = "seed"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_DATETIME}:
            return datetime.fromisoformat(value[_DATETIME])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def dump_fields(booking: Any) -> dict[str, Any]:
    """A booking dataclass's fields (not its seed), JSON-ready."""
    return {
        f.name: _encode(getattr(booking, f.name))
        for f in dataclasses.fields(booking)
        if f.name != _SEED_FIELD
    }


def load_fields(stored: dict[str, Any]) -> dict[str, Any]:
    return {name: _decode(value) for name, value in stored.items()}


def restore_fields(booking: Any, stored: dict[str, Any]) -> None:
    """Put stored fields back on a seeded booking (fields it does not have are ignored)."""
    names = {f.name for f in dataclasses.fields(booking)} - {_SEED_FIELD}
    for name, value in load_fields(stored).items():
        if name in names:
            setattr(booking, name, value)


def read_state(path: Path) -> Any:
    """The stored state, or None when there is none yet."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def write_state(path: Path, state: Any) -> None:
    """Replace the file at once (write a sibling, then rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(state, out, indent=1)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
