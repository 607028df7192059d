"""Sandbox stand-ins for the scheduling providers (iClosed, NovaCal), for tests and the local stack.

`start_sandbox("iclosed")` serves the provider's contract on a loopback port in a background thread
and returns a `SandboxProvider` (name, url, token, bookings, stop()). `/_sandbox/...` on the same
port shows the call log, stats and bookings, and sets faults. CLI: `python -m local.sandbox --help`.
"""

from local.sandbox.server import PROVIDERS, SandboxProvider, start_sandbox

__all__ = ["PROVIDERS", "SandboxProvider", "start_sandbox"]
