"""`make sign-link`: mint a signed reschedule link for a form source, as the business's mailer would.

    python -m local.sign_link --source form-demo --provider novacal --booking <id> --expires-in 86400

It reads the link secret the way the relay does: the sources registry from Secrets Manager (the
running local stack's, whose endpoint `.local/stack.json` names), parsed and signed by the relay's
own code. It prints one JSON object: every hidden field the form needs, `url` (the source's form
page with those fields as its query) and `hosted_url` (the relay's own page for the link).
A negative `--expires-in` mints a link that has already expired.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.processes import DUMMY_CLIENT_SETTINGS
from local.seed import SECRETS_PREFIX
from local.template import REPO_ROOT

CODE_DIR = REPO_ROOT / "functions" / "reschedule"
NOT_RUNNING = "sign-link: the local stack is not running (start it with `make run`)"
_FAST = Config(connect_timeout=1, read_timeout=3, retries={"total_max_attempts": 1})


class SignLinkError(Exception):
    """A one-line message for the person running the command."""


def relay_importable() -> None:
    """The relay's package lives in the Lambda's code directory; put it on the path like Lambda does."""
    if str(CODE_DIR) not in sys.path:
        sys.path.append(str(CODE_DIR))


def mint_link(
    registry: dict[str, Any],
    *,
    source: str,
    provider: str,
    booking_id: str,
    expires_in: int,
    account: str = "default",
    now: float | None = None,
    api_url: str | None = None,
) -> dict[str, str]:
    """The hidden fields, `url` and (given the relay's `api_url`) `hosted_url` of a link for one
    booking: what `relayctl links mint` makes."""
    relay_importable()
    from relayctl.errors import ToolError  # noqa: PLC0415 - importable only once the path is set
    from relayctl.links import mint_link as mint  # noqa: PLC0415

    try:
        return mint(
            registry,
            source=source,
            provider=provider,
            booking_id=booking_id,
            expires_in=expires_in,
            account=account,
            now=now,
            api_url=api_url,
        )
    except ToolError as exc:
        raise SignLinkError(f"sign-link: {exc}") from None


def read_registry(secrets_endpoint: str, prefix: str) -> dict[str, Any]:
    client = boto3.client(
        "secretsmanager", endpoint_url=secrets_endpoint, config=_FAST, **DUMMY_CLIENT_SETTINGS
    )
    try:
        secret = client.get_secret_value(SecretId=f"{prefix}/sources")
    except (BotoCoreError, ClientError):
        raise SignLinkError(NOT_RUNNING) from None
    value: dict[str, Any] = json.loads(secret["SecretString"])
    return value


def main(argv: list[str] | None = None) -> int:
    from local.stack import STATE_DIR  # noqa: PLC0415 - the stack module is heavy; only the CLI needs it

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--provider", required=True)
    parser.add_argument("--booking", required=True)
    parser.add_argument("--expires-in", type=int, default=86400, help="seconds; negative: already expired")
    parser.add_argument("--account", default="default")
    args = parser.parse_args(argv)
    try:
        try:
            info = json.loads((STATE_DIR / "stack.json").read_text())
        except (FileNotFoundError, ValueError):
            raise SignLinkError(NOT_RUNNING) from None
        registry = read_registry(info["secrets_endpoint"], info.get("secrets_prefix", SECRETS_PREFIX))
        link = mint_link(
            registry,
            source=args.source,
            provider=args.provider,
            booking_id=args.booking,
            expires_in=args.expires_in,
            account=args.account,
            api_url=info.get("api_url"),
        )
    except SignLinkError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(link))
    return 0


if __name__ == "__main__":
    sys.exit(main())
