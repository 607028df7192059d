"""`relayctl sources ...`: who may call the relay. Secrets are generated here and printed once."""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import os
import re
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.callers.registry import (
    MAX_SECRETS_PER_SOURCE,
    MIN_FORM_SECRET_LENGTH,
    SIGNED_FORM_KINDS,
    SOURCE_NAME_PATTERN,
    TOKEN_FORM_KINDS,
    WEBHOOK_SECRET_PREFIX,
)
from relay.dal.ledger import Ledger
from relay.dal.records import SOURCE_INDEX, RecordStore
from relay.ports import LedgerUnavailable, LockNotHeld, Stopping
from relay.reschedule.stops import SOURCE_REVOKED, ended_record, stop_outcome
from relay.settings import Settings
from relay.webhooks.destinations import destination_refusal
from relayctl import registry
from relayctl.aws import Target, unavailable
from relayctl.errors import ToolError
from relayctl.output import emit_json, say, table

FORM_KINDS = (*SIGNED_FORM_KINDS, *TOKEN_FORM_KINDS)
KINDS = ("api_key", "standard_webhooks", "signed_link", *FORM_KINDS)
DELIVERY_MODES = ("sync", "async", "auto")
API_KEY_PREFIX = "rr_live_"
# 32 random bytes for every generated secret: API keys, signing secrets, link secrets.
SECRET_BYTES = 32
_SECRET_FIELD = {
    "api_key": "api_key_sha256",
    "standard_webhooks": "secrets",
    "signed_link": "link_secrets",
    **dict.fromkeys(SIGNED_FORM_KINDS, "signing_secrets"),
    **dict.fromkeys(TOKEN_FORM_KINDS, "path_token_sha256"),
}


def _new_secret(kind: str) -> tuple[str, str]:
    """(what the caller gets, what the registry stores) for a new secret of this kind."""
    if kind == "api_key":
        key = API_KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        return key, hashlib.sha256(key.encode()).hexdigest()
    if kind == "standard_webhooks":
        value = WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
        return value, value
    if kind in TOKEN_FORM_KINDS:  # the intake URL's token: shown once, stored as its hash
        token = secrets.token_urlsafe(SECRET_BYTES)
        return token, hashlib.sha256(token.encode()).hexdigest()
    if kind in SIGNED_FORM_KINDS:
        raise ToolError(f"a {kind} source's secret is the form tool's own: read it with _tool_secret", 2)
    value = secrets.token_urlsafe(SECRET_BYTES)
    return value, value


def _allowed(pairs: list[str]) -> dict[str, list[str]]:
    providers: dict[str, list[str]] = {}
    for pair in pairs:
        provider, _, account = pair.partition(":")
        if not provider or not account:
            raise ToolError(f"--allow {pair!r}: use PROVIDER:ACCOUNT, e.g. novacal:default", 2)
        providers.setdefault(provider.lower(), [])
        if account not in providers[provider.lower()]:
            providers[provider.lower()].append(account)
    return providers


def _pairs(option: str, pairs: list[str]) -> dict[str, str]:
    """`--map booking_id=form_response.hidden.booking_id` (repeatable) -> {field: value}; once each."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not name or not equals or not value:
            raise ToolError(f"{option} {pair!r}: use FIELD=VALUE, e.g. booking_id=form_response.hidden.id", 2)
        if name in found:
            raise ToolError(f"{option}: {name!r} is given twice", 2)
        found[name] = value
    return found


def _tool_secret(kind: str) -> str:
    """The form tool's signing secret, from stdin or a prompt: never argv (shell history, ps)."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"{kind} signing secret (as set in {kind}'s webhook settings): ")
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if len(value) < MIN_FORM_SECRET_LENGTH:
        raise ToolError(
            f"give the {kind} webhook's signing secret on stdin or at the prompt "
            f"(at least {MIN_FORM_SECRET_LENGTH} characters)",
            2,
        )
    return value


def _form_entry(args: argparse.Namespace) -> dict[str, Any]:
    if not args.map:
        raise ToolError("a form source needs --map FIELD=JMESPATH (repeatable), at least booking_id", 2)
    return {"mapping": _pairs("--map", args.map), "constants": _pairs("--const", args.const)}


def _link_entry(args: argparse.Namespace) -> dict[str, Any]:
    if not args.origin or not args.form_url:
        raise ToolError("a signed_link source needs --origin (repeatable) and --form-url", 2)
    entry: dict[str, Any] = {"origins": args.origin, "form_url": args.form_url}
    for option in ("success_url", "error_url", "honeypot"):
        if getattr(args, option):
            entry[option] = getattr(args, option)
    return entry


def intake_url(api_url: str | None, name: str, token: str | None) -> str | None:
    if not api_url:
        return None
    path = f"/v1/intake/{name}" + (f"/{token}" if token else "")
    return api_url.rstrip("/") + path


def _source(raw: dict[str, Any], name: str) -> dict[str, Any]:
    found = raw.get("sources", {}).get(name)
    if not isinstance(found, dict):
        raise ToolError(f"no source named {name!r} (see: relayctl sources list)")
    return found


def list_sources(target: Target, args: argparse.Namespace) -> int:
    raw, _ = registry.read(target.secretsmanager, target.sources_secret)
    parsed = registry.check(raw)
    rows = [
        {
            "name": name,
            "kind": source.kind,
            "secrets": len(raw["sources"][name].get(_SECRET_FIELD[source.kind], [])),
            "allows": [f"{p}:{a}" for p, accounts in sorted(source.providers.items()) for a in accounts],
            "delivery": raw["sources"][name].get("delivery"),
            "callback": (raw["sources"][name].get("callback") or {}).get("url"),
        }
        for name, source in sorted(parsed.sources.items())
    ]
    if args.json:
        emit_json(rows)
    else:
        table(rows, ["name", "kind", "secrets", "allows", "delivery", "callback"])
    return 0


def add_source(target: Target, args: argparse.Namespace) -> int:
    if not re.match(SOURCE_NAME_PATTERN, args.name):
        raise ToolError(f"{args.name!r} is not a source name: lower case letters, digits, '-' and '_'", 2)
    if not args.allow:
        raise ToolError("say what it may move: --allow PROVIDER:ACCOUNT (repeatable)", 2)
    if args.kind in FORM_KINDS:
        form = _form_entry(args)  # before reading a secret: a usage error asks for nothing
    if args.kind in SIGNED_FORM_KINDS:
        shown = stored = _tool_secret(args.kind)
    else:
        shown, stored = _new_secret(args.kind)
    entry: dict[str, Any] = {
        "kind": args.kind,
        _SECRET_FIELD[args.kind]: [stored],
        "providers": _allowed(args.allow),
    }
    if args.kind in FORM_KINDS:
        entry |= form
    if args.kind == "signed_link":
        entry |= _link_entry(args)
    if args.delivery:
        entry["delivery"] = args.delivery
    if args.subscriptions:
        if args.kind != "api_key":
            raise ToolError("--subscriptions is for api_key sources (they subscribe with their key)", 2)
        entry["subscriptions"] = True

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        sources = raw.setdefault("sources", {})
        if args.name in sources:
            raise ToolError(
                f"a source named {args.name!r} exists already; use 'sources rotate' or 'sources set'"
            )
        sources[args.name] = entry
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    if args.kind in FORM_KINDS:
        _show_intake(args, target.api_url, args.kind, shown if args.kind in TOKEN_FORM_KINDS else None)
    else:
        _show_secret(args, args.name, args.kind, shown, "added")
    return 0


def rotate_source(target: Target, args: argparse.Namespace) -> int:
    """Add the next secret in front (new links are signed with it); the old ones keep working.

    A Typeform, Tally or Webflow source's next secret is the tool's own: read once, from stdin or a prompt.
    """
    kind: dict[str, str] = {}
    current, _ = registry.read(target.secretsmanager, target.sources_secret)
    tool_kind = _source(current, args.name).get("kind")
    tool_secret = _tool_secret(tool_kind) if tool_kind in SIGNED_FORM_KINDS else None

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        source = _source(raw, args.name)
        kind["kind"] = source["kind"]
        field = _SECRET_FIELD[source["kind"]]
        if len(source.get(field, [])) >= MAX_SECRETS_PER_SOURCE:
            raise ToolError(
                f"{args.name} has {MAX_SECRETS_PER_SOURCE} secrets already; retire the old ones first"
            )
        if source["kind"] in SIGNED_FORM_KINDS:
            if tool_secret is None:  # its kind changed between the reads
                raise ToolError(f"{args.name} changed while rotating; try again")
            kind["shown"] = stored = tool_secret
        else:
            kind["shown"], stored = _new_secret(source["kind"])
        source[field] = [stored, *source.get(field, [])]
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    if kind["kind"] in SIGNED_FORM_KINDS:  # the tool's own secret: not echoed back
        if args.json:
            emit_json({"name": args.name, "kind": kind["kind"], "rotated": True})
        else:
            say(f"{args.name}: rotated; the new and the old secret both verify until 'retire'")
        return 0
    _show_secret(args, args.name, kind["kind"], kind["shown"], "rotated")
    return 0


def retire_source(target: Target, args: argparse.Namespace) -> int:
    """Keep only the newest secret: callers still on an older one get 401 from now on."""
    retired: list[int] = []

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        source = _source(raw, args.name)
        field = _SECRET_FIELD[source["kind"]]
        retired.append(len(source[field]) - 1)
        source[field] = source[field][:1]
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    if args.json:
        emit_json({"name": args.name, "retired": retired[-1]})
    else:
        say(f"{args.name}: retired {retired[-1]} older secret(s); only the newest works now")
    return 0


# A queued request is at most this old (the longest DELIVERY_MAX_AGE_SECONDS, and its last attempt):
# older attempts of the source are not read. A page of its attempts holds at most this many.
QUEUED_LOOKBACK_SECONDS = 7 * 24 * 3600 + 3600
QUEUED_PAGE = 100


def revoke_source(target: Target, args: argparse.Namespace) -> int:
    def change(raw: dict[str, Any]) -> dict[str, Any]:
        _source(raw, args.name)
        del raw["sources"][args.name]
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    stopped = _stop_queued(target, args.name)
    if args.json:
        emit_json({"name": args.name, "revoked": True, "queued_stopped": stopped})
        return 0
    say(f"{args.name}: revoked; its calls are refused once the relay's secret cache refreshes")
    if stopped is None:
        say("queued moves not checked (no tables: pass --table/--stack); the worker refuses them at delivery")
    else:
        say(f"stopped {stopped} queued move(s): they end failed (source_revoked) and are never delivered")
    return 0


def _stop_queued(target: Target, name: str) -> int | None:
    """End the source's queued moves `failed` (source_revoked); one whose provider call is under
    way gets the stop noted (the worker ends it). None when the tables are not known."""
    idempotency_table = target.idempotency_table or os.environ.get("IDEMPOTENCY_TABLE_NAME")
    if not target.reschedules_table or not idempotency_table:
        return None
    records = RecordStore(target.dynamodb, target.reschedules_table)
    ledger = Ledger(target.dynamodb, idempotency_table, records)
    retention = int(
        os.environ.get("RECORD_RETENTION_DAYS", Settings.model_fields["record_retention_days"].default)
    )
    since = (datetime.now(UTC) - timedelta(seconds=QUEUED_LOOKBACK_SECONDS)).isoformat(
        timespec="milliseconds"
    )
    stopped = 0
    start: Any = None
    try:
        while True:
            page = target.dynamodb.query(
                TableName=target.reschedules_table,
                IndexName=SOURCE_INDEX,
                KeyConditionExpression="#source = :s AND attempted_at >= :since",
                FilterExpression="#status = :queued",
                ExpressionAttributeNames={"#source": "source", "#status": "status"},
                ExpressionAttributeValues={
                    ":s": {"S": name},
                    ":since": {"S": since},
                    ":queued": {"S": "queued"},
                },
                Limit=QUEUED_PAGE,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                stopped += _stop(ledger, RecordStore.plain(item), retention)
            start = page.get("LastEvaluatedKey")
            if not start:
                return stopped
    except (BotoCoreError, ClientError, LedgerUnavailable) as exc:
        raise unavailable(f"stopping {name}'s queued moves (stopped {stopped} so far)", exc) from None


def _stop(ledger: Ledger, stored: dict[str, Any], retention_days: int) -> int:
    if stored.get("status") != "queued":
        return 0
    record = ended_record(stored, stop_outcome(SOURCE_REVOKED), retention_days=retention_days)
    try:
        ledger.cancel(record, item_id=str(stored.get("idempotency_record", "")), now=int(time.time()))
    except Stopping:
        return 1  # a call is under way: the worker ends it (succeeded only if that call moved it)
    except LockNotHeld:
        return 0  # it ended meanwhile
    return 1


def set_source(target: Target, args: argparse.Namespace) -> int:
    callback_secret: list[str] = []
    # The relay's own check, again before each POST; loopback only where the relay's setting allows it.
    allow_loopback = os.environ.get("CALLBACK_ALLOW_HTTP_LOOPBACK", "").lower() in {"1", "true"}
    refused = args.callback_url and destination_refusal(args.callback_url, allow_loopback=allow_loopback)
    if refused:
        raise ToolError(f"--callback-url refused: {refused}", 2)

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        source = _source(raw, args.name)
        if args.allow:
            source["providers"] = _allowed(args.allow)
        if args.delivery:
            source["delivery"] = args.delivery
        if args.subscriptions is not None:
            if source["kind"] != "api_key":
                raise ToolError("--subscriptions is for api_key sources (they subscribe with their key)", 2)
            source["subscriptions"] = args.subscriptions
        if args.no_callback:
            source.pop("callback", None)
        elif args.callback_url:
            current = source.get("callback") or {}
            if not current.get("secrets"):
                shown, _ = _new_secret("standard_webhooks")
                callback_secret.append(shown)
            source["callback"] = {
                "url": args.callback_url,
                "secrets": current.get("secrets") or callback_secret,
            }
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    if args.json:
        emit_json({"name": args.name, "callback_secret": callback_secret[0] if callback_secret else None})
    else:
        say(f"{args.name}: updated")
        if callback_secret:
            say(f"callback signing secret (shown once; verify webhook-signature): {callback_secret[0]}")
    return 0


def _show_intake(args: argparse.Namespace, api_url: str | None, kind: str, token: str | None) -> None:
    """The URL to paste into the form tool; for unsigned kinds it holds the token: shown once."""
    url = intake_url(api_url, args.name, token)
    if args.json:
        emit_json({"name": args.name, "kind": kind, "intake_url": url, "intake_token": token})
        return
    say(f"{args.name}: added ({kind})")
    if url is None:
        say("intake URL: <your ApiUrl>" + (f"/v1/intake/{args.name}" + (f"/{token}" if token else "")))
        say("(pass --api-url or --stack to print the full URL)")
    else:
        say(f"intake URL{' (shown once: its token is the secret)' if token else ''}: {url}")


def _show_secret(args: argparse.Namespace, name: str, kind: str, shown: str, what: str) -> None:
    labels = {"api_key": "api_key", "standard_webhooks": "signing_secret", "signed_link": "link_secret"}
    label = labels.get(kind, "signing_secret" if kind in SIGNED_FORM_KINDS else "intake_token")
    if args.json:
        emit_json({"name": name, "kind": kind, label: shown})
        return
    say(f"{name}: {what} ({kind})")
    say(f"{label.replace('_', ' ')} (shown once, store it now; the relay keeps only what it needs): {shown}")


def register(commands: Any) -> None:
    sources = commands.add_parser("sources", help="who may call the relay").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = sources.add_parser("list", help="every source, its kind, what it may move")
    listing.set_defaults(run=list_sources)

    add = sources.add_parser("add", help="a new source; prints its new secret once")
    add.add_argument("name")
    add.add_argument("--kind", choices=KINDS, required=True)
    add.add_argument("--allow", action="append", default=[], metavar="PROVIDER:ACCOUNT")
    add.add_argument("--delivery", choices=DELIVERY_MODES)
    add.add_argument(
        "--origin", action="append", default=[], help="signed_link: a page origin allowed to post"
    )
    add.add_argument("--form-url", help="signed_link: the page that shows the form")
    add.add_argument("--success-url")
    add.add_argument("--error-url")
    add.add_argument("--honeypot", help="signed_link: a hidden field humans leave empty")
    add.add_argument(
        "--subscriptions", action="store_true", help="api_key: may subscribe URLs to its outcome events"
    )
    add.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=JMESPATH",
        help="form kinds: a canonical field from the tool's payload (repeatable)",
    )
    add.add_argument(
        "--const", action="append", default=[], metavar="FIELD=VALUE", help="form kinds: a fixed field value"
    )
    add.add_argument("--api-url", help="the relay's ApiUrl, for the printed intake URL (or $RELAY_API_URL)")
    add.set_defaults(run=add_source)

    rotate = sources.add_parser("rotate", help="add the next secret; the old ones work until 'retire'")
    rotate.add_argument("name")
    rotate.set_defaults(run=rotate_source)
    retire = sources.add_parser("retire", help="keep only the newest secret")
    retire.add_argument("name")
    retire.set_defaults(run=retire_source)
    revoke = sources.add_parser("revoke", help="remove a source: its calls are refused")
    revoke.add_argument("name")
    revoke.set_defaults(run=revoke_source)

    change = sources.add_parser("set", help="change what a source may move, its delivery mode or callback")
    change.add_argument("name")
    change.add_argument(
        "--allow", action="append", default=[], metavar="PROVIDER:ACCOUNT", help="replaces the list"
    )
    change.add_argument("--delivery", choices=DELIVERY_MODES)
    change.add_argument(
        "--callback-url", help="https URL for outcome callbacks (a signing secret is made once)"
    )
    change.add_argument("--no-callback", action="store_true")
    change.add_argument(
        "--subscriptions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="api_key: may (or may no longer) subscribe URLs to its outcome events",
    )
    change.set_defaults(run=set_source)
