"""Callers ("sources"): who may call the relay, how they prove it, and what they may move.

The registry is one JSON secret, `<prefix>/sources`; each source names its `kind` of proof:

    {"sources": {
      "zapier-demo":  {"kind": "api_key", "api_key_sha256": ["<hex sha-256 of each valid key>"],
                       "providers": {"iclosed": ["default"], "novacal": ["default"]}},
      "signing-demo": {"kind": "standard_webhooks", "secrets": ["whsec_<base64>", ...],
                       "providers": {"iclosed": ["default"]}},
      "form-demo":    {"kind": "signed_link", "link_secrets": ["<at least 32 characters>", ...],
                       "providers": {"novacal": ["default"]},
                       "origins": ["https://www.example.com"], "honeypot": "website",
                       "form_url": "https://www.example.com/reschedule",
                       "success_url": "https://www.example.com/rescheduled",
                       "error_url": "https://www.example.com/reschedule-failed"}},
      "typeform-demo": {"kind": "typeform", "signing_secrets": ["<the webhook's secret>"],
                        "providers": {"iclosed": ["default"]},
                        "mapping": {"booking_id": "form_response.hidden.booking_id", ...},
                        "constants": {"provider": "iclosed"}},
      "jotform-demo":  {"kind": "jotform", "path_token_sha256": ["<hex sha-256 of the URL token>"], ...}}

Form tools' own webhooks (relay/callers/intake.py) are the kinds `typeform`, `tally` and `webflow`
(signed with `signing_secrets`) and `jotform` and `fillout` (which cannot sign: a secret token in
the intake URL's path, stored as its hash). Their `mapping` takes each canonical field from the
tool's payload with a JMESPath expression, compiled when the registry is parsed; `constants` fill
the rest. A signed_link source may name what its hosted page shows: `display_name`, `logo_url`,
`brand_colour`.

Any source may set its `quotas` (defaults in relay/ports.py `SourceQuotas`, docs/callers.md):

    "quotas": {"requests_per_minute": 120, "queued_backlog": 200, "moves_per_booking_per_day": 5}

(`null` for one of them: no such quota for that source). Over one: 429 with Retry-After.

Any source may also name an outcome `callback`, `{"url": "https://...", "secrets": ["whsec_..."]}`:
the relay POSTs a signed Standard Webhooks event there when one of its requests succeeds or fails
(relay.reschedule.callbacks). The URL comes from here only, never from a request.

Every kind takes several secrets at once, for rotation. API keys are stored as hashes only; the
other kinds need the secret itself (an HMAC key), which is why the registry is a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from relay.errors import RelayError, forbidden, not_configured, unauthenticated
from relay.fields import ALIASES, CANONICAL_BY_NAME
from relay.ports import (
    DEFAULT_MOVES_PER_BOOKING_PER_DAY,
    DEFAULT_QUEUED_BACKLOG,
    DEFAULT_REQUESTS_PER_MINUTE,
    SourceQuotas,
)
from relay.webhooks.sender import CallbackTarget

if TYPE_CHECKING:
    from jmespath.parser import ParsedResult

    from relay.ports import Secrets

SOURCE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_API_KEY_LENGTH = 512
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
# Standard Webhooks: symmetric signing secrets are random, at least 24 bytes; 64 is plenty.
MIN_WEBHOOK_SECRET_BYTES = 24
MAX_WEBHOOK_SECRET_BYTES = 64
# Link secrets are typed by operators: long enough to be a real HMAC key.
MIN_LINK_SECRET_LENGTH = 32
MAX_SECRETS_PER_SOURCE = 5
MAX_ORIGINS_PER_SOURCE = 20
# Form fields that carry a signed link's proof; the relay removes them before validating the rest.
LINK_FIELDS = ("source", "expires", "token")

# Form tools' secrets are set or shown in their dashboards; shorter ones are guessable.
MIN_FORM_SECRET_LENGTH = 16
MAX_FORM_SECRET_LENGTH = 256
MAX_MAPPED_FIELDS = len(ALIASES)
MAX_EXPRESSION_LENGTH = 512
MAX_CONSTANT_LENGTH = 200
MAX_DISPLAY_NAME_LENGTH = 80
SIGNED_FORM_KINDS = ("typeform", "tally", "webflow")
TOKEN_FORM_KINDS = ("jotform", "fillout")
# A form cannot ask for a dry run: each submission is meant to move the booking.
UNMAPPABLE_FIELDS = frozenset({"dry_run"})

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Providers = dict[str, list[Annotated[str, Field(min_length=1)]]]


def webhook_secret_bytes(secret: str) -> bytes:
    """`whsec_<base64>` -> the HMAC key (padding optional, as in the reference implementation)."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"a signing secret starts with {WEBHOOK_SECRET_PREFIX!r}")
    encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX).rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a signing secret is base64 after its prefix") from None
    if not MIN_WEBHOOK_SECRET_BYTES <= len(key) <= MAX_WEBHOOK_SECRET_BYTES:
        raise ValueError(
            f"a signing secret decodes to {MIN_WEBHOOK_SECRET_BYTES} to {MAX_WEBHOOK_SECRET_BYTES} bytes"
        )
    return key


def _webhook_secret(value: str) -> str:
    webhook_secret_bytes(value)
    return value


def _origin(value: str) -> str:
    """An exact origin, as browsers send it: scheme://host[:port], lower case, no path, never `*`."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or value != f"{parts.scheme}://{parts.netloc}"
        or value != value.lower()
        or "@" in parts.netloc
    ):
        raise ValueError("an origin is scheme://host[:port] in lower case, without a path")
    return value


def _page_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("use an absolute http(s) URL")
    return value


def _https_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        raise ValueError("use an absolute https URL without credentials")
    return value


def _callback_url(value: str) -> str:
    # Only http(s), no credentials in the URL; whether plain http is allowed is the sender's setting.
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("a callback URL is an absolute https URL without credentials")
    return value


Origin = Annotated[str, AfterValidator(_origin)]
PageUrl = Annotated[str, Field(max_length=2000), AfterValidator(_page_url)]
WebhookSecret = Annotated[str, AfterValidator(_webhook_secret)]


class Callback(BaseModel):
    """Where a source's outcomes are POSTed, signed with `secrets[0]` (and the others, for rotation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[str, Field(max_length=2000), AfterValidator(_callback_url)]
    secrets: Annotated[list[WebhookSecret], Field(min_length=1, max_length=MAX_SECRETS_PER_SOURCE)]

    def target(self) -> CallbackTarget:
        keys = tuple(webhook_secret_bytes(secret) for secret in self.secrets)
        # Changes with the URL or any secret: a 410 disables the callback until one of them changes.
        fingerprint = hashlib.sha256(
            json.dumps([self.url, *self.secrets], separators=(",", ":")).encode()
        ).hexdigest()[:32]
        return CallbackTarget(url=self.url, keys=keys, fingerprint=fingerprint)


# The largest quota a source may set: each quota item holds one 16-character member per key in its
# window, so an item stays well under DynamoDB's 400 KB (and its write cost small).
MAX_REQUESTS_PER_MINUTE = 1200
MAX_QUEUED_BACKLOG = 2000
MAX_MOVES_PER_BOOKING_PER_DAY = 1000


class Quotas(BaseModel):
    """A source's quotas; each one `null` means none (e.g. a load-test source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: Annotated[int | None, Field(ge=1, le=MAX_REQUESTS_PER_MINUTE)] = (
        DEFAULT_REQUESTS_PER_MINUTE
    )
    queued_backlog: Annotated[int | None, Field(ge=1, le=MAX_QUEUED_BACKLOG)] = DEFAULT_QUEUED_BACKLOG
    moves_per_booking_per_day: Annotated[int | None, Field(ge=1, le=MAX_MOVES_PER_BOOKING_PER_DAY)] = (
        DEFAULT_MOVES_PER_BOOKING_PER_DAY
    )

    def values(self) -> SourceQuotas:
        return SourceQuotas(
            requests_per_minute=self.requests_per_minute,
            queued_backlog=self.queued_backlog,
            moves_per_booking_per_day=self.moves_per_booking_per_day,
        )


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # provider -> the accounts this source may use with it
    providers: Providers
    # How its requests are delivered (relay.reschedule.modes); None: the default for its kind.
    delivery: Literal["sync", "async", "auto"] | None = None
    # Where its outcomes are POSTed (relay.reschedule.callbacks); None: no callbacks.
    callback: Callback | None = None
    # Its quotas (relay/dal/quotas.py); absent: the defaults.
    quotas: Quotas = Quotas()


class ApiKeySource(_Source):
    kind: Literal["api_key"]
    api_key_sha256: Annotated[list[Sha256Hex], Field(min_length=1, max_length=MAX_SECRETS_PER_SOURCE)]
    # May subscribe URLs to its outcome events (POST /v1/subscriptions, e.g. the Zapier app's triggers);
    # each of its final outcomes then reads its subscriptions (one DynamoDB read), so it is opt-in.
    subscriptions: bool = False


class StandardWebhooksSource(_Source):
    """A sender that signs each request (Svix, Hookdeck, scripts): https://www.standardwebhooks.com."""

    kind: Literal["standard_webhooks"]
    secrets: Annotated[
        list[Annotated[str, AfterValidator(_webhook_secret)]],
        Field(min_length=1, max_length=MAX_SECRETS_PER_SOURCE),
    ]

    def signing_keys(self) -> list[bytes]:
        return [webhook_secret_bytes(secret) for secret in self.secrets]


class SignedLinkSource(_Source):
    """A public web form: the page carries a link token minted with `link_secrets[0]`."""

    kind: Literal["signed_link"]
    link_secrets: Annotated[
        list[Annotated[str, Field(min_length=MIN_LINK_SECRET_LENGTH, max_length=256)]],
        Field(min_length=1, max_length=MAX_SECRETS_PER_SOURCE),
    ]
    # Browser origins allowed to post (CORS and the Origin check); exact matches only.
    origins: Annotated[list[Origin], Field(min_length=1, max_length=MAX_ORIGINS_PER_SOURCE)]
    # A hidden field humans leave empty; a filled one marks the post as spam.
    honeypot: Annotated[str | None, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")] = None
    # The page that shows the form: signed links point here.
    form_url: PageUrl
    # Where plain HTML form posts are sent afterwards (303); never a URL from the request.
    success_url: PageUrl | None = None
    error_url: PageUrl | None = None
    # What the relay's hosted reschedule page shows (GET /v1/pages/reschedule); None: the source's name.
    display_name: Annotated[str | None, Field(min_length=1, max_length=MAX_DISPLAY_NAME_LENGTH)] = None
    logo_url: Annotated[str | None, Field(max_length=2000), AfterValidator(_https_url)] = None
    brand_colour: Annotated[str | None, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = None

    @model_validator(mode="after")
    def _honeypot_is_not_a_real_field(self) -> SignedLinkSource:
        if self.honeypot in CANONICAL_BY_NAME or self.honeypot in LINK_FIELDS:
            raise ValueError("the honeypot must not be a request field")
        return self


def _canonical_name(value: str) -> str:
    if value not in ALIASES or value in UNMAPPABLE_FIELDS:
        names = ", ".join(name for name in ALIASES if name not in UNMAPPABLE_FIELDS)
        raise ValueError(f"{value[:64]!r} is not a canonical field; use one of: {names}")
    return value


def _expression(value: str) -> str:
    try:
        jmespath.compile(value)
    except JMESPathError:
        raise ValueError(f"{value[:MAX_EXPRESSION_LENGTH]!r} is not a JMESPath expression") from None
    return value


CanonicalName = Annotated[str, AfterValidator(_canonical_name)]
Expression = Annotated[
    str, Field(min_length=1, max_length=MAX_EXPRESSION_LENGTH), AfterValidator(_expression)
]
FormSecret = Annotated[str, Field(min_length=MIN_FORM_SECRET_LENGTH, max_length=MAX_FORM_SECRET_LENGTH)]


class _FormSource(_Source):
    """A form tool's own webhook: its payload is mapped onto the canonical fields."""

    # Forms are people: a provider's outage is queued, and the tool gets its answer fast.
    delivery: Literal["sync", "async", "auto"] | None = "auto"
    # canonical field -> JMESPath expression over the tool's payload
    mapping: Annotated[dict[CanonicalName, Expression], Field(min_length=1, max_length=MAX_MAPPED_FIELDS)]
    # canonical field -> a fixed value (provider, account, timezone, ...)
    constants: Annotated[
        dict[CanonicalName, Annotated[str, Field(max_length=MAX_CONSTANT_LENGTH)]],
        Field(max_length=MAX_MAPPED_FIELDS),
    ] = Field(default_factory=dict)
    _compiled: dict[str, ParsedResult] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _fields_are_mapped_once(self) -> _FormSource:
        both = sorted(set(self.mapping) & set(self.constants))
        if both:
            raise ValueError(f"a field is either mapped or a constant, not both: {', '.join(both)}")
        if "booking_id" not in self.mapping:
            raise ValueError("map booking_id: each submission names its own booking")
        return self

    def model_post_init(self, context: Any, /) -> None:
        # Compiled once per parsed registry (the reader parses each fetched value once).
        self._compiled = {name: jmespath.compile(expression) for name, expression in self.mapping.items()}

    @property
    def compiled_mapping(self) -> dict[str, ParsedResult]:
        return self._compiled


class SignedFormSource(_FormSource):
    """Typeform, Tally or Webflow: each delivery is signed with the secret the tool shows or was given."""

    kind: Literal["typeform", "tally", "webflow"]
    signing_secrets: Annotated[list[FormSecret], Field(min_length=1, max_length=MAX_SECRETS_PER_SOURCE)]


class TokenFormSource(_FormSource):
    """Jotform or Fillout: they do not sign, so the intake URL carries a secret token (stored hashed)."""

    kind: Literal["jotform", "fillout"]
    path_token_sha256: Annotated[list[Sha256Hex], Field(min_length=1, max_length=MAX_SECRETS_PER_SOURCE)]


FormSource = SignedFormSource | TokenFormSource
AnySource = ApiKeySource | StandardWebhooksSource | SignedLinkSource | SignedFormSource | TokenFormSource

SourceKind = TypeVar("SourceKind", bound=_Source)
Admitted = TypeVar("Admitted")
# Refusals a newer registry could turn into an admission (a key, secret or form source just added).
UNKNOWN_CREDENTIAL_CODES = frozenset(
    # intake_not_found / token_invalid: a form-tool source (or its rotated token) added seconds ago
    {"invalid_api_key", "signature_mismatch", "link_invalid", "intake_not_found", "token_invalid"}
)

Source = Annotated[AnySource, Field(discriminator="kind")]


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[Annotated[str, Field(pattern=SOURCE_NAME_PATTERN)], Source]

    @model_validator(mode="after")
    def _secrets_belong_to_one_source(self) -> Registry:
        # A secret shared by two sources would make "who is calling" ambiguous.
        seen: set[str] = set()
        for source in self.sources.values():
            for secret in _secrets_of(source):
                if secret in seen:
                    raise ValueError("a key or secret appears in more than one source")
                seen.add(secret)
        return self

    def of_kind(self, kind: type[SourceKind]) -> list[tuple[str, SourceKind]]:
        return [(name, source) for name, source in self.sources.items() if isinstance(source, kind)]

    @property
    def browser_origins(self) -> frozenset[str]:
        return frozenset(o for _, source in self.of_kind(SignedLinkSource) for o in source.origins)

    def callback_target(self, name: str) -> CallbackTarget | None:
        """Where the source `name` wants its outcomes, or None (no such source, or no callback)."""
        source = self.sources.get(name)
        return source.callback.target() if source is not None and source.callback is not None else None

    def subscribes(self, name: str) -> bool:
        """Whether the source `name` may have event subscriptions (and its outcomes go to them)."""
        source = self.sources.get(name)
        return isinstance(source, ApiKeySource) and source.subscriptions

    def allowed_origin(self, origin: str | None) -> str | None:
        """The request's Origin when a form source allows it (CORS), else None."""
        return origin if origin and origin in self.browser_origins else None


def _secrets_of(source: AnySource) -> list[str]:
    if isinstance(source, ApiKeySource):
        return list(source.api_key_sha256)
    if isinstance(source, StandardWebhooksSource):
        return [base64.b64encode(key).decode() for key in source.signing_keys()]
    if isinstance(source, SignedFormSource):
        return list(source.signing_secrets)
    if isinstance(source, TokenFormSource):
        return list(source.path_token_sha256)
    return list(source.link_secrets)


class Caller(BaseModel):
    """An authenticated source."""

    model_config = ConfigDict(frozen=True)

    name: str
    providers: dict[str, list[str]]
    kind: str = "api_key"
    # The source's delivery mode from the registry, None for its kind's default.
    delivery: str | None = None
    # True when the source is told its outcomes: it has a registry callback, or event subscriptions
    # are on for it (relay.reschedule.subscriptions); the callbacks find its receivers.
    notify: bool = False
    # Its quotas, from the registry (the defaults when it sets none).
    quotas: SourceQuotas = SourceQuotas()

    @classmethod
    def of(cls, name: str, source: AnySource) -> Caller:
        return cls(
            name=name,
            providers=source.providers,
            kind=source.kind,
            delivery=source.delivery,
            notify=source.callback is not None or (isinstance(source, ApiKeySource) and source.subscriptions),
            quotas=source.quotas.values(),
        )

    def authorise(self, provider: str, account: str) -> None:
        accounts = self.providers.get(provider)
        if accounts is None:
            raise forbidden(f"This source may not use the provider {provider!r}.", "provider_not_allowed")
        if account not in accounts:
            raise forbidden(
                f"This source may not use the {provider} account {account!r}.", "account_not_allowed"
            )

    @property
    def allowed_providers(self) -> list[str]:
        return sorted(self.providers)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_registry(raw: dict[str, Any]) -> Registry:
    try:
        return Registry.model_validate(raw)
    except ValidationError:
        # The registry's content may hold secrets: name only where it is, never what is in it.
        raise not_configured("the sources registry secret does not have the expected shape.") from None


def presented_api_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated(
                "Use 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'.", "malformed_credentials"
            )
        return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def authenticate(registry: Registry, headers: Mapping[str, str]) -> Caller:
    """Find the API-key source whose key matches; compare every stored hash in constant time."""
    key = presented_api_key(headers)
    if key is None:
        raise unauthenticated(
            "Send your API key in 'Authorization: Bearer <key>' or 'X-Api-Key'.", "missing_credentials"
        )
    if len(key) > MAX_API_KEY_LENGTH:
        raise unauthenticated("The API key is not valid.", "invalid_api_key")
    presented = hash_api_key(key)
    found: Caller | None = None
    for name, source in registry.of_kind(ApiKeySource):
        for stored in source.api_key_sha256:
            if hmac.compare_digest(presented, stored) and found is None:
                found = Caller.of(name, source)
    if found is None:
        raise unauthenticated("The API key is not valid.", "invalid_api_key")
    return found


class SourcesReader:
    """The registry, read through the container's secret cache and parsed once per fetched value.

    Freshness without a Secrets Manager call per request:
    - `secrets` caches the registry for REGISTRY_MAX_AGE_SECONDS (a store of its own, apart from the
      provider credentials' longer one), so a revoked or narrowed source is refused within that in
      every container;
    - a credential the cached registry does not know (`admit`) re-reads it at once, at most once per
      `recheck_seconds` in a container, so a new source's key works within that, and a flood of
      wrong keys costs at most one read per interval.
    """

    def __init__(
        self,
        secrets: Secrets,
        secret_name: str,
        *,
        recheck_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = secrets
        self._name = secret_name
        self._recheck = recheck_seconds
        self._clock = clock
        self._rechecked_at: float | None = None
        # The registry parsed from the secret value it came from (the cache returns that same object).
        self._parsed: tuple[dict[str, Any], Registry] | None = None

    def current(self) -> Registry:
        return self._parse(self._secrets.get_json(self._name))

    def reread(self) -> Registry | None:
        """The registry read from Secrets Manager now (and cached), or None when this container did so
        less than `recheck_seconds` ago."""
        now = self._clock()
        if self._rechecked_at is not None and now - self._rechecked_at < self._recheck:
            return None
        self._rechecked_at = now
        return self._parse(self._secrets.get_json(self._name, force_fetch=True))

    def admit(self, check: Callable[[Registry], Admitted]) -> Admitted:
        """`check` against the cached registry; if it refuses an unknown credential, once more against
        a registry read again (when `reread` allows), so a source added seconds ago is admitted."""
        try:
            return check(self.current())
        except RelayError as error:
            if error.code not in UNKNOWN_CREDENTIAL_CODES:
                raise
            fresher = self.reread()
            if fresher is None:
                raise
        return check(fresher)

    def _parse(self, raw: dict[str, Any]) -> Registry:
        if self._parsed is None or self._parsed[0] is not raw:
            self._parsed = (raw, parse_registry(raw))
        return self._parsed[1]
