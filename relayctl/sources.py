"""`relayctl sources ...`: who may call the relay. Secrets are generated here and printed once."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
from typing import Any

from relay.callers.registry import MAX_SECRETS_PER_SOURCE, SOURCE_NAME_PATTERN, WEBHOOK_SECRET_PREFIX
from relay.webhooks.destinations import destination_refusal
from relayctl import registry
from relayctl.aws import Target
from relayctl.errors import ToolError
from relayctl.output import emit_json, say, table

KINDS = ("api_key", "standard_webhooks", "signed_link")
DELIVERY_MODES = ("sync", "async", "auto")
API_KEY_PREFIX = "rr_live_"
# 32 random bytes for every generated secret: API keys, signing secrets, link secrets.
SECRET_BYTES = 32
_SECRET_FIELD = {"api_key": "api_key_sha256", "standard_webhooks": "secrets", "signed_link": "link_secrets"}


def _new_secret(kind: str) -> tuple[str, str]:
    """(what the caller gets, what the registry stores) for a new secret of this kind."""
    if kind == "api_key":
        key = API_KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        return key, hashlib.sha256(key.encode()).hexdigest()
    if kind == "standard_webhooks":
        value = WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
        return value, value
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
    shown, stored = _new_secret(args.kind)
    entry: dict[str, Any] = {
        "kind": args.kind,
        _SECRET_FIELD[args.kind]: [stored],
        "providers": _allowed(args.allow),
    }
    if args.kind == "signed_link":
        if not args.origin or not args.form_url:
            raise ToolError("a signed_link source needs --origin (repeatable) and --form-url", 2)
        entry["origins"] = args.origin
        entry["form_url"] = args.form_url
        for option in ("success_url", "error_url", "honeypot"):
            if getattr(args, option):
                entry[option] = getattr(args, option)
    if args.delivery:
        entry["delivery"] = args.delivery

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        sources = raw.setdefault("sources", {})
        if args.name in sources:
            raise ToolError(
                f"a source named {args.name!r} exists already; use 'sources rotate' or 'sources set'"
            )
        sources[args.name] = entry
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    _show_secret(args, args.name, args.kind, shown, "added")
    return 0


def rotate_source(target: Target, args: argparse.Namespace) -> int:
    """Add the next secret in front (new links are signed with it); the old ones keep working."""
    kind: dict[str, str] = {}

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        source = _source(raw, args.name)
        kind["kind"] = source["kind"]
        field = _SECRET_FIELD[source["kind"]]
        if len(source.get(field, [])) >= MAX_SECRETS_PER_SOURCE:
            raise ToolError(
                f"{args.name} has {MAX_SECRETS_PER_SOURCE} secrets already; retire the old ones first"
            )
        kind["shown"], stored = _new_secret(source["kind"])
        source[field] = [stored, *source.get(field, [])]
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
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


def revoke_source(target: Target, args: argparse.Namespace) -> int:
    def change(raw: dict[str, Any]) -> dict[str, Any]:
        _source(raw, args.name)
        del raw["sources"][args.name]
        return raw

    registry.update(target.secretsmanager, target.sources_secret, change)
    if args.json:
        emit_json({"name": args.name, "revoked": True})
    else:
        say(f"{args.name}: revoked; its calls are refused once the relay's secret cache refreshes")
    return 0


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


def _show_secret(args: argparse.Namespace, name: str, kind: str, shown: str, what: str) -> None:
    label = {"api_key": "api_key", "standard_webhooks": "signing_secret", "signed_link": "link_secret"}[kind]
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
    change.set_defaults(run=set_source)
