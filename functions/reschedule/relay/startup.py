"""Imported first by the handler module: no garbage collection while the container initialises.

Initialisation allocates many long-lived objects (modules, classes, pydantic schemas) and no
garbage worth collecting, yet triggers dozens of collections. `app` calls `finished()` at the end of
its init, which freezes what init made (later collections skip it) and turns collection back on.
"""

from __future__ import annotations

import gc

gc.disable()


def finished() -> None:
    gc.freeze()
    gc.enable()
