"""Demo data for the local stack: sandbox provider tokens and demo sources in Secrets Manager.

One demo source per kind of caller (plus a second API-key source limited to NovaCal). All values are
obviously fake (`sandbox-...`); nothing here is used outside the local stack and tests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import httpx

from local.secrets_emulator import put_secret_json

SECRETS_PREFIX = "reschedule-relay"
# Each provider's `default` account secret, as the relay reads it from Secrets Manager.
PROVIDER_SECRETS: dict[str, dict[str, str]] = {
    # iClosed keys carry an 'iclosed' prefix (contracts/iclosed.md); the relay sends them as stored.
    "iclosed": {"api_key": "iclosed-sandbox-token-0001"},
    "novacal": {"api_key": "sandbox-novacal-token-0001"},
    "calcom": {"api_key": "cal_sandbox_key_0001"},  # Cal.com keys start with `cal_`
    "acuity": {"user_id": "10001", "api_key": "sandbox-acuity-key-0001"},  # HTTP Basic: user id + key
}
# What each sandbox accepts: the bearer token, or for Acuity its Basic credential `<user id>:<key>`.
PROVIDER_TOKENS = {
    name: f"{secret['user_id']}:{secret['api_key']}" if "user_id" in secret else secret["api_key"]
    for name, secret in PROVIDER_SECRETS.items()
}
BOTH_PROVIDERS = {"iclosed": ["default"], "novacal": ["default"]}
# Where `make run` serves the demo form page when PORT is the default (the stack uses the real one).
DEFAULT_FORM_ORIGIN = "http://127.0.0.1:3001"


def whsec(raw: bytes) -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of the key."""
    return "whsec_" + base64.b64encode(raw).decode()


@dataclass(frozen=True, kw_only=True)
class _Callbacks:
    """An outcome callback: the relay POSTs signed events to `callback_url` (the stack's sink)."""

    # The Standard Webhooks secret the events are signed with; None: the source has no callback.
    callback_secret: str | None = None
    # Set when the stack knows where its callback sink listens (`with_callback_sink`).
    callback_url: str | None = None
    # The source's `quotas` in the registry; None: the relay's defaults (docs/callers.md "Quotas").
    quotas: Mapping[str, int | None] | None = None

    def _callback_entry(self) -> dict[str, Any]:
        quotas = {} if self.quotas is None else {"quotas": dict(self.quotas)}
        if self.callback_secret is None or self.callback_url is None:
            return quotas
        return quotas | {"callback": {"url": self.callback_url, "secrets": [self.callback_secret]}}

    def _callback_info(self) -> dict[str, Any]:
        if self.callback_secret is None or self.callback_url is None:
            return {}
        return {"callback_url": self.callback_url, "callback_secret": self.callback_secret}


@dataclass(frozen=True)
class DemoSource(_Callbacks):
    """A caller with an API key (Zapier, a partner's backend)."""

    kind: ClassVar[str] = "api_key"
    name: str
    api_key: str
    providers: dict[str, list[str]] = field(default_factory=dict)
    # May subscribe URLs to its outcome events (POST /v1/subscriptions: the Zapier app's triggers).
    subscriptions: bool = False

    def registry_entry(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "api_key_sha256": [hashlib.sha256(self.api_key.encode()).hexdigest()],
            "providers": self.providers,
            **self._callback_entry(),
            **({"subscriptions": True} if self.subscriptions else {}),
        }

    def caller_info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "api_key": self.api_key,
            "providers": sorted(self.providers),
            **self._callback_info(),
            **({"subscriptions": True} if self.subscriptions else {}),
        }


@dataclass(frozen=True)
class DemoSigningSource:
    """A sender that signs its requests (Standard Webhooks); `secrets[0]` is the one it signs with."""

    kind: ClassVar[str] = "standard_webhooks"
    name: str
    secrets: tuple[str, ...]
    providers: dict[str, list[str]] = field(default_factory=dict)
    # The source's `quotas` in the registry; None: the relay's defaults.
    quotas: Mapping[str, int | None] | None = None

    def registry_entry(self) -> dict[str, Any]:
        quotas = {} if self.quotas is None else {"quotas": dict(self.quotas)}
        return {"kind": self.kind, "secrets": list(self.secrets), "providers": self.providers, **quotas}

    def caller_info(self) -> dict[str, Any]:
        return {"kind": self.kind, "secret": self.secrets[0], "providers": sorted(self.providers)}


@dataclass(frozen=True)
class DemoLinkSource(_Callbacks):
    """A public web form with signed links; its pages live at `origin` (the stack serves them)."""

    kind: ClassVar[str] = "signed_link"
    name: str
    link_secrets: tuple[str, ...]
    providers: dict[str, list[str]] = field(default_factory=dict)
    origin: str = DEFAULT_FORM_ORIGIN
    honeypot: str = "website"
    # What the relay's hosted page shows (GET /v1/pages/reschedule); None: the source's name.
    display_name: str | None = None
    brand_colour: str | None = None

    @property
    def pages(self) -> dict[str, str]:
        return {
            "form_url": f"{self.origin}/reschedule",
            "success_url": f"{self.origin}/rescheduled",
            "error_url": f"{self.origin}/reschedule-failed",
        }

    def at(self, origin: str) -> DemoLinkSource:
        return replace(self, origin=origin)

    def registry_entry(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "link_secrets": list(self.link_secrets),
            "providers": self.providers,
            "origins": [self.origin],
            "honeypot": self.honeypot,
            **self.pages,
            **({"display_name": self.display_name} if self.display_name else {}),
            **({"brand_colour": self.brand_colour} if self.brand_colour else {}),
            **self._callback_entry(),
        }

    def caller_info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "link_secret": self.link_secrets[0],
            "origins": [self.origin],
            "honeypot": self.honeypot,
            "providers": sorted(self.providers),
            **self.pages,
            **self._callback_info(),
        }


@dataclass(frozen=True)
class DemoFormSource:
    """A form tool's own webhook (relay/callers/intake.py): signed with `secret` (Typeform, Tally,
    Webflow) or, for tools that do not sign (Jotform, Fillout), proven by `secret` as the URL's token."""

    kind: str
    name: str
    secret: str
    mapping: dict[str, str]
    constants: dict[str, str]
    providers: dict[str, list[str]] = field(default_factory=dict)
    # The form tools' demos have no quotas, like the other demo sources (NO_QUOTAS).
    quotas: Mapping[str, int | None] | None = field(
        default_factory=lambda: dict.fromkeys(
            ("requests_per_minute", "queued_backlog", "moves_per_booking_per_day")
        )
    )

    @property
    def signed(self) -> bool:
        return self.kind in ("typeform", "tally", "webflow")

    @property
    def intake_path(self) -> str:
        return f"/v1/intake/{self.name}" if self.signed else f"/v1/intake/{self.name}/{self.secret}"

    def registry_entry(self) -> dict[str, Any]:
        proof = (
            {"signing_secrets": [self.secret]}
            if self.signed
            else {"path_token_sha256": [hashlib.sha256(self.secret.encode()).hexdigest()]}
        )
        return {
            "kind": self.kind,
            **proof,
            "providers": self.providers,
            "mapping": self.mapping,
            "constants": self.constants,
            **({} if self.quotas is None else {"quotas": dict(self.quotas)}),
        }

    def caller_info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "secret": self.secret,
            "intake_path": self.intake_path,
            "mapping": self.mapping,
            "constants": self.constants,
            "providers": sorted(self.providers),
        }


AnyDemoSource = DemoSource | DemoSigningSource | DemoLinkSource | DemoFormSource

# ---- pacing ----
# NovaCal accounts with their own keys and delivery rates (docs/delivery.md "Pacing"): `paced` at
# NovaCal's contract rate, `paced-fast` at 10x for tests that must not take minutes. The sandbox
# limits each key at the same rate (pace_sandboxes), so any overrun shows as a sandbox 429.
PACED_NOVACAL_ACCOUNTS: dict[str, dict[str, Any]] = {
    "paced": {"api_key": "sandbox-novacal-token-paced-0001", "rate_per_minute": 60},
    "paced-fast": {"api_key": "sandbox-novacal-token-paced-0002", "rate_per_minute": 600},
}
# The demo `default` accounts are unpaced, so load tests measure the relay rather than the pacing.
UNPACED = {"rate_per_minute": 0}


def pace_sandboxes(sandboxes: Mapping[str, Any]) -> None:
    """The NovaCal sandbox accepts the paced accounts' keys and limits each at its account's rate."""
    novacal = sandboxes["novacal"]
    for secret in PACED_NOVACAL_ACCOUNTS.values():
        novacal.allow_token(secret["api_key"])
        limit = {"token": secret["api_key"], "per_minute": secret["rate_per_minute"]}
        httpx.post(f"{novacal.url}/_sandbox/limits", json=limit).raise_for_status()


# ---- end pacing ----

# The demo sources have no quotas: the tests, the demos and `make bench` move one booking many
# times a minute. `quota-demo` shows them (docs/callers.md "Quotas").
NO_QUOTAS: Mapping[str, int | None] = {
    "requests_per_minute": None,
    "queued_backlog": None,
    "moves_per_booking_per_day": None,
}

# The Zapier demo may use every provider's default account (the stack's sandboxes all run), and
# NovaCal's paced accounts.
ALL_PROVIDERS = {name: ["default"] for name in PROVIDER_SECRETS} | {
    "novacal": ["default", *PACED_NOVACAL_ACCOUNTS]
}
# No callback: the load tests and `make bench` measure the relay's own path with it.
ZAPIER_DEMO = DemoSource(
    name="zapier-demo", api_key="sandbox-key-zapier-demo-0001", providers=ALL_PROVIDERS, quotas=NO_QUOTAS
)
# A second API-key caller limited to one provider: shows the allow-list, keeps sources' records apart,
# and has an outcome callback to the stack's sink (docs/callbacks.md).
WEBSITE_DEMO = DemoSource(
    name="website-demo",
    api_key="sandbox-key-website-demo-0001",
    providers={"novacal": ["default"]},
    callback_secret=whsec(b"sandbox-callback-secret-website-demo-01"),
    quotas=NO_QUOTAS,
)
# The Zapier app's demo connection (integrations/zapier, docs/zapier.md): event subscriptions on, so
# its triggers can subscribe. Its own source, so zapier-demo's path (the benchmark's) reads nothing more.
ZAPIER_APP_DEMO = DemoSource(
    name="zapier-app-demo",
    api_key="sandbox-key-zapier-app-demo-0001",
    providers=BOTH_PROVIDERS,
    subscriptions=True,
    quotas=NO_QUOTAS,
)
# Two secrets at once, as during a rotation: the sender signs with the first, either verifies.
SIGNING_DEMO = DemoSigningSource(
    "signing-demo",
    (whsec(b"sandbox-signing-secret-0001"), whsec(b"sandbox-signing-secret-0002")),
    BOTH_PROVIDERS,
    quotas=NO_QUOTAS,
)
FORM_DEMO = DemoLinkSource(
    name="form-demo",
    link_secrets=("sandbox-link-secret-form-demo-0001", "sandbox-link-secret-form-demo-0000"),
    # Cal.com too: its bookings can be read, so the hosted page shows their current time.
    providers=BOTH_PROVIDERS | {"calcom": ["default"]},
    callback_secret=whsec(b"sandbox-callback-secret-form-demo-0001"),
    quotas=NO_QUOTAS,
    display_name="Sandbox Demo Studio",
    brand_colour="#0b6e4f",
)
# One per form tool; their mappings read the sample payloads in tests/fixtures/forms/ (docs/forms.md).
NOVACAL_ONLY = {"novacal": ["default"]}
TYPEFORM_DEMO = DemoFormSource(
    kind="typeform",
    name="typeform-demo",
    secret="sandbox-typeform-secret-0001",
    mapping={
        "booking_id": "form_response.hidden.booking_id",
        "date": "form_response.answers[?field.ref=='new_date'].date | [0]",
        "time": "form_response.answers[?field.ref=='new_time'].choice.label | [0]",
    },
    constants={"provider": "novacal", "timezone": "Europe/Berlin"},
    providers=NOVACAL_ONLY,
)
TALLY_DEMO = DemoFormSource(
    kind="tally",
    name="tally-demo",
    secret="sandbox-tally-secret-0001",
    mapping={
        "booking_id": "data.fields[?label=='booking_id'].value | [0]",
        "date": "data.fields[?key=='question_date'].value | [0]",
        "time": "data.fields[?key=='question_time'].value | [0]",
    },
    constants={"provider": "novacal", "timezone": "America/New_York"},
    providers=NOVACAL_ONLY,
)
WEBFLOW_DEMO = DemoFormSource(
    kind="webflow",
    name="webflow-demo",
    secret="sandbox-webflow-secret-0001",
    mapping={
        "booking_id": 'payload.data."Booking ID"',
        "date": 'payload.data."New date"',
        "time": 'payload.data."New time"',
    },
    constants={"provider": "novacal", "timezone": "Europe/London"},
    providers=NOVACAL_ONLY,
)
JOTFORM_DEMO = DemoFormSource(
    kind="jotform",
    name="jotform-demo",
    secret="sandbox-jotform-path-token-0001",
    mapping={
        "booking_id": "q3_bookingId",
        "date": "join('-', [q4_newDate.year, q4_newDate.month, q4_newDate.day])",
        "time": "join(':', [q5_newTime.hourSelect, q5_newTime.minuteSelect])",
    },
    constants={"provider": "novacal", "timezone": "Australia/Sydney"},
    providers=NOVACAL_ONLY,
)
FILLOUT_DEMO = DemoFormSource(
    kind="fillout",
    name="fillout-demo",
    secret="sandbox-fillout-path-token-0001",
    mapping={
        "booking_id": "submission.urlParameters[?name=='booking_id'].value | [0]",
        "start": "submission.questions[?name=='New time'].value | [0]",
    },
    constants={"provider": "novacal", "timezone": "UTC"},
    providers=NOVACAL_ONLY,
)
FORM_TOOL_DEMOS = (TYPEFORM_DEMO, TALLY_DEMO, WEBFLOW_DEMO, JOTFORM_DEMO, FILLOUT_DEMO)
# An API-key source with the default quotas but a queued backlog of 2 (tests/integration/test_quotas.py).
QUOTA_DEMO = DemoSource(
    name="quota-demo",
    api_key="sandbox-key-quota-demo-0001",
    providers=BOTH_PROVIDERS,
    quotas={"queued_backlog": 2},
)
DEMO_SOURCES: tuple[AnyDemoSource, ...] = (
    ZAPIER_DEMO,
    WEBSITE_DEMO,
    SIGNING_DEMO,
    FORM_DEMO,
    *FORM_TOOL_DEMOS,
    ZAPIER_APP_DEMO,
    QUOTA_DEMO,
)


def demo_sources(
    form_origin: str | None = None, hook_url: Callable[[str], str] | None = None
) -> tuple[AnyDemoSource, ...]:
    """The demo sources, with the form source's pages at `form_origin` and, given `hook_url`
    (source name -> URL), the callbacks of the sources that have one pointing there."""
    sources = DEMO_SOURCES
    if form_origin is not None:
        sources = tuple(s.at(form_origin) if isinstance(s, DemoLinkSource) else s for s in sources)
    if hook_url is not None:
        sources = tuple(
            replace(s, callback_url=hook_url(s.name))
            if isinstance(s, (DemoSource, DemoLinkSource)) and s.callback_secret
            else s
            for s in sources
        )
    return sources


def registry(sources: tuple[AnyDemoSource, ...]) -> dict[str, Any]:
    return {"sources": {s.name: s.registry_entry() for s in sources}}


def seed_secrets(
    client: Any, sources: tuple[AnyDemoSource, ...] = DEMO_SOURCES, prefix: str = SECRETS_PREFIX
) -> None:
    for provider, secret in PROVIDER_SECRETS.items():
        put_secret_json(client, f"{prefix}/providers/{provider}/default", secret | UNPACED)
    for account, secret in PACED_NOVACAL_ACCOUNTS.items():
        put_secret_json(client, f"{prefix}/providers/novacal/{account}", secret)
    put_secret_json(client, f"{prefix}/sources", registry(sources))
