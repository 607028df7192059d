"""The `relayctl` command: argument parsing, the AWS target, and one-line errors with exit codes."""

from __future__ import annotations

import argparse
import sys

from relayctl import accounts, history, links, queue, smoke, sources
from relayctl.aws import Target
from relayctl.errors import EXIT_USAGE, ToolError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="relayctl",
        description="Operate a reschedule relay: sources, provider accounts, links, history, queue, smoke.",
        epilog="AWS access comes from the standard configuration (profile, region, AWS_ENDPOINT_URL_*). "
        "Exit codes: 0 ok, 1 failed, 2 usage, 3 AWS unavailable or resource missing.",
    )
    top.add_argument("--profile", help="AWS profile (default: the standard chain)")
    top.add_argument("--region", help="AWS region (default: the standard chain)")
    top.add_argument(
        "--stack", help="read table, queue and secret names from this CloudFormation stack's outputs"
    )
    top.add_argument("--prefix", help="secrets prefix (default: $SECRETS_PREFIX or reschedule-relay)")
    top.add_argument("--table", help="reschedules table (default: $RESCHEDULES_TABLE_NAME)")
    top.add_argument("--queue-url", help="delivery queue (default: $DELIVERY_QUEUE_URL)")
    top.add_argument("--dlq-url", help="dead-letter queue (default: $DEAD_LETTER_QUEUE_URL)")
    top.add_argument("--json", action="store_true", help="machine-readable output")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (sources, accounts, links, history, queue, smoke):
        module.register(commands)
    # `--json` is accepted after the command too (`relayctl history P B --json`).
    for choice in commands.choices.values():
        _accept_json(choice)
    return top


def _accept_json(command: argparse.ArgumentParser) -> None:
    actions = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        command.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
        )
    for action in actions:
        for sub in action.choices.values():
            _accept_json(sub)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        target = Target.from_args(args) if getattr(args, "needs_aws", True) else None
        code: int = args.run(target, args)
    except ToolError as exc:
        sys.stderr.write(f"relayctl: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("relayctl: interrupted\n")
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
