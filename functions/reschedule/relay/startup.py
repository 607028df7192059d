"""Imported first by the handler modules: what init must know before anything else is imported.

- No garbage collection while the container initialises. Initialisation allocates many long-lived
  objects (modules, classes, pydantic schemas) and no garbage worth collecting, yet triggers dozens
  of collections. `app` calls `finished()` at the end of its init, which freezes what init made
  (later collections skip it) and turns collection back on.
- No pydantic plugins. At its first model pydantic looks for plugins in the metadata of every
  installed distribution (about 5 ms of a cold start); the relay has none. An environment that sets
  PYDANTIC_DISABLE_PLUGINS itself keeps its value.
"""

from __future__ import annotations

import gc
import os

gc.disable()
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def finished() -> None:
    gc.freeze()
    gc.enable()
