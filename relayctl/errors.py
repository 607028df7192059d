"""What the tool tells a person when something is wrong: one line, and an exit code scripts rely on."""

from __future__ import annotations

# Exit codes (documented in docs/operating.md).
EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and its answer is "no" (smoke test failed, nothing found)
EXIT_USAGE = 2  # the command line is wrong (argparse uses 2 too)
EXIT_UNAVAILABLE = 3  # AWS (or the local stack) could not be reached, or a resource is missing


class ToolError(Exception):
    """A one-line message saying what to fix."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
