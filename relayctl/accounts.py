"""`relayctl accounts put`: a provider account's credential, in the shape its adapter declares.

The credential is read from standard input (a JSON object, or just the key) or typed at a hidden
prompt: never from an argument, which would land in shell history.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.providers import PROVIDERS
from relayctl.aws import Target, unavailable
from relayctl.errors import ToolError
from relayctl.output import emit_json, say

# Optional per-account settings every provider secret may carry (the relay's pacing reads it).
COMMON_OPTIONAL = ("rate_per_minute",)


def credential_fields(provider: str) -> tuple[str, ...]:
    """The secret's required fields, as the adapter declares them (an API key unless it says more)."""
    adapter = PROVIDERS[provider]
    model = getattr(adapter, "credentials", None)
    if model is not None and hasattr(model, "model_fields"):
        return tuple(name for name, info in model.model_fields.items() if info.is_required())
    return ("api_key",)


def _read_credential(provider: str) -> dict[str, Any]:
    fields = credential_fields(provider)
    if sys.stdin.isatty():
        return {name: getpass.getpass(f"{provider} {name}: ") for name in fields}
    text = sys.stdin.read().strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise ToolError("standard input is not valid JSON") from None
        if not isinstance(value, dict):
            raise ToolError("standard input must be a JSON object")
        return value
    if len(fields) != 1:
        raise ToolError(f"{provider} needs {', '.join(fields)}: send a JSON object on standard input")
    return {fields[0]: text}


def put_account(target: Target, args: argparse.Namespace) -> int:
    provider = args.provider.lower()
    if provider not in PROVIDERS:
        raise ToolError(f"unknown provider {args.provider!r}; use one of {', '.join(sorted(PROVIDERS))}", 2)
    secret = _read_credential(provider)
    missing = [name for name in credential_fields(provider) if not str(secret.get(name) or "").strip()]
    if missing:
        raise ToolError(f"{provider} credential is missing {', '.join(missing)}")
    model = getattr(PROVIDERS[provider], "credentials", None)
    if model is not None and hasattr(model, "model_validate"):
        try:
            model.model_validate(secret)
        except ValueError:
            raise ToolError(f"the {provider} credential does not have the shape its adapter needs") from None
    name = target.provider_secret(provider, args.account)
    body = json.dumps(secret)
    client = target.secretsmanager
    try:
        try:
            client.put_secret_value(SecretId=name, SecretString=body)
            action = "rotated"
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            client.create_secret(Name=name, SecretString=body)
            action = "created"
    except (BotoCoreError, ClientError) as exc:
        raise unavailable(f"the secret {name!r}", exc) from None
    if args.json:
        emit_json({"secret": name, "action": action})
    else:
        say(f"{name}: {action} (the relay reads it within its secret cache age)")
    return 0


def register(commands: Any) -> None:
    accounts = commands.add_parser("accounts", help="provider credentials").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    put = accounts.add_parser(
        "put", help="store or rotate an account's credential (read from stdin or a prompt)"
    )
    put.add_argument("provider")
    put.add_argument("account", nargs="?", default="default")
    put.set_defaults(run=put_account)
