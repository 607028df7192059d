"""What README.md tells callers to copy must work: the form snippet and the link-minting code."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.form_page import FORM_SNIPPET
from local.seed import SIGNING_DEMO
from relay.callers import links
from relay.callers.registry import parse_registry

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_form_snippet_is_the_one_the_browser_tests_submit() -> None:
    assert textwrap.indent(FORM_SNIPPET.rstrip(), "   ") in README


def test_the_link_minting_code_makes_links_the_relay_accepts() -> None:
    (code,) = re.findall(r"```python\n(\s*import base64, hashlib.*?)```", README, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(code), namespace)  # noqa: S102 - the README's own example
    secret = "sandbox-link-secret-readme-0001-xxxxxxxx"
    registry = parse_registry(
        {
            "sources": {
                "website": {
                    "kind": "signed_link",
                    "link_secrets": [secret],
                    "providers": {"novacal": ["default", "eu"]},
                    "origins": ["https://www.example.com"],
                    "form_url": "https://www.example.com/reschedule",
                }
            }
        }
    )
    for account in ("default", "eu"):
        url = namespace["reschedule_link"](
            secret, "website", "novacal", "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000001",
            "https://www.example.com/reschedule", account=account,
        )  # fmt: skip
        fields = dict(parse_qsl(urlsplit(url).query))
        assert links.verify(registry, fields, now=time.time()).account == account


def test_the_signing_example_uses_the_demo_secret() -> None:
    assert f'secret = "{SIGNING_DEMO.secrets[0]}"' in README
