"""The docs tell the truth: their examples work, their tables match the code, their links resolve.

Tables are checked against the relay's source text (tests/doc_checks.py), both ways: a code, log
line or metric added to the relay fails here until the docs page that lists them has its row.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from local.form_page import FORM_SNIPPET
from local.sandbox.bookings import ICLOSED_FIRST_ID
from local.seed import SIGNING_DEMO, ZAPIER_DEMO
from relay.callers import links
from relay.callers.registry import parse_registry
from tests import doc_checks
from tests.doc_checks import README, ROOT, code_spans, doc_pages, page, section, tables

# The front door stays short; the manual is in docs/.
MAX_README_LINES = 200
# Levels as the docs spell them: Powertools' logger.exception writes an ERROR line.
LEVEL_NAMES = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR",
               "exception": "ERROR", "critical": "CRITICAL"}  # fmt: skip
GENERATED = re.compile(r"<!-- bench:begin -->.*?<!-- bench:end -->", flags=re.DOTALL)


def _table(text: str, first_column: str) -> list[dict[str, str]]:
    (rows,) = [rows for rows in tables(text) if rows and first_column in rows[0]]
    return rows


# ---- Examples --------------------------------------------------------------------------------------


def test_the_form_snippet_is_the_one_the_browser_tests_submit() -> None:
    assert textwrap.indent(FORM_SNIPPET.rstrip(), "   ") in page("callers.md")


def test_the_link_minting_code_makes_links_the_relay_accepts() -> None:
    (code,) = re.findall(r"```python\n(\s*import base64, hashlib.*?)```", page("callers.md"), flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(code), namespace)  # noqa: S102 - the docs' own example
    secret = "sandbox-link-secret-docs-0001-xxxxxxxxxx"
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
    assert f'secret = "{SIGNING_DEMO.secrets[0]}"' in page("callers.md")


@pytest.mark.parametrize("text", [README.read_text(), page("local-stack.md")], ids=["README", "local-stack"])
def test_the_quick_start_example_uses_the_demo_key_and_a_seeded_booking(text: str) -> None:
    (example,) = re.findall(r"```sh\n(curl -s -X POST .*?)```", text, flags=re.DOTALL)
    assert f"Authorization: Bearer {ZAPIER_DEMO.api_key}" in example
    assert "iclosed" in ZAPIER_DEMO.providers
    assert f'"provider": "iclosed", "booking_id": {ICLOSED_FIRST_ID},' in example


def test_the_readme_is_a_short_front_door() -> None:
    assert len(README.read_text().splitlines()) <= MAX_README_LINES


# ---- Tables against the code -----------------------------------------------------------------------


def test_the_scan_finds_the_codes_it_must() -> None:
    # A scan that silently found nothing would make the table checks below pass vacuously.
    found = doc_checks.reason_codes()
    assert {"invalid_json", "link_expired", "in_progress", "provider_unavailable", "not_configured"} <= set(
        found
    )
    assert found["provider_unavailable"] == {503}
    assert found["invalid_api_key"] == {401}


def test_the_error_table_lists_every_reason_code_with_its_status() -> None:
    rows = _table(section(page("api.md"), "Errors"), "code")
    documented = {code_spans(row["code"])[0]: int(row["status"]) for row in rows}
    found = doc_checks.reason_codes()
    assert sorted(set(found) - set(documented)) == [], (
        "codes the relay answers: add a row to docs/api.md Errors"
    )
    assert sorted(set(documented) - set(found)) == [], "docs/api.md lists codes the relay never answers"
    wrong = {code: (documented[code], found[code]) for code in found if documented[code] not in found[code]}
    assert wrong == {}, "docs/api.md gives these codes another status than the code does"


def test_every_code_column_in_the_docs_names_real_codes() -> None:
    found = doc_checks.reason_codes()
    for path in doc_pages():
        for rows in tables(path.read_text()):
            for row in rows:
                for code in code_spans(row.get("code", "") + " " + row.get("code(s)", "")):
                    assert code in found, f"{path.name}: `{code}` is not a code the relay answers"


def test_the_log_line_table_matches_what_the_relay_logs() -> None:
    rows = _table(section(page("operating.md"), "Logs"), "message")
    documented = {code_spans(row["message"])[0]: row["level"] for row in rows}
    written = {
        message: {LEVEL_NAMES[level] for level in levels}
        for message, levels in doc_checks.log_lines().items()
        if levels - {"debug"}
    }
    assert sorted(set(written) - set(documented)) == [], "log lines missing from docs/operating.md Logs"
    assert sorted(set(documented) - set(written)) == [], (
        "docs/operating.md lists log lines the relay never writes"
    )
    assert {m: {documented[m]} for m in written} == written


def test_every_log_line_the_docs_quote_is_written_at_that_level() -> None:
    written = doc_checks.log_lines()
    quoted = [
        (path.name, message, level)
        for path in doc_pages()
        for message, level in re.findall(r"logs `([^`]+)` at ([A-Z]+)", path.read_text())
    ]
    assert quoted, "failures.md quotes the line an operator searches for when a record is lost"
    for name, message, level in quoted:
        assert message in written, f"{name}: no log line {message!r} in the relay"
        assert level in {LEVEL_NAMES[lvl] for lvl in written[message]}, (
            f"{name}: {message!r} is not at {level}"
        )


def test_the_metrics_table_matches_the_metrics_the_relay_emits() -> None:
    rows = _table(section(page("operating.md"), "Metrics"), "metric")
    documented = {code_spans(row["metric"])[0] for row in rows}
    assert documented == doc_checks.metric_names()


def test_the_parameter_table_lists_every_template_parameter() -> None:
    rows = _table(section(page("deploying.md"), "Build and deploy"), "parameter")
    documented = {name for row in rows for name in code_spans(row["parameter"])}
    assert documented == doc_checks.template_parameters()


def test_the_configuration_table_lists_every_setting() -> None:
    from relay.settings import Settings  # noqa: PLC0415 - the relay's package, on the test path

    rows = _table(section(page("deploying.md"), "Configuration"), "variable")
    documented = {name for row in rows for name in code_spans(row["variable"])}
    assert documented == {name.upper() for name in Settings.model_fields}


def test_every_provider_adapter_has_a_page_and_a_row() -> None:
    rows = _table(page("providers/README.md"), "provider")
    listed = {value for row in rows for value in code_spans(row["`provider` value"])}
    names = doc_checks.provider_names()
    assert names, "the scan finds the adapters"
    for name in names:
        assert name in listed, f"docs/providers/README.md has no row for {name}"
        assert (doc_checks.DOCS_DIR / "providers" / f"{name}.md").is_file(), f"no docs/providers/{name}.md"


def test_sizes_outside_the_measured_tables_are_bounds_from_the_code() -> None:
    # Package sizes go stale: the docs point at build/sizes.json and the bench tables instead.
    bounds = {
        f"{doc_checks.integer_constant('MAX_BODY_BYTES') // 1024} KiB",
        f"{doc_checks.integer_constant('MAX_LAYER_UNZIPPED_MIB', ROOT / 'bench')} MiB",
    }
    for path in doc_pages():
        for size in re.findall(r"\b\d+(?:\.\d+)? [KM]iB\b", GENERATED.sub("", path.read_text())):
            assert size in bounds, f"{path.name}: {size} is not a bound the code sets"


# Files the docs name that a run creates rather than the repository holds.
GENERATED_PATHS = (".local/", "build/")


def test_every_project_file_the_docs_name_exists() -> None:
    # `relay/...` paths are inside the function's code directory; the rest are from the root.
    named = 0
    for path in doc_pages():
        for span in code_spans(path.read_text()):
            if re.fullmatch(r"[\w.-]+(?:/[\w.-]+)+\.(?:py|json|yaml|txt)", span) and not span.startswith(
                GENERATED_PATHS
            ):
                base = doc_checks.CODE_DIR if span.startswith("relay/") else ROOT
                assert (base / span).is_file(), f"{path.relative_to(ROOT)}: `{span}` does not exist"
                named += 1
    assert named > 5


# ---- Links -----------------------------------------------------------------------------------------


def _anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    }


def _links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_every_relative_link_resolves() -> None:
    checked = 0
    for path in doc_pages():
        for target in _links(path.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:: not ours to check offline
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            assert resolved.exists(), f"{path.relative_to(ROOT)}: {target} does not exist"
            assert resolved.is_relative_to(ROOT), f"{path.relative_to(ROOT)}: {target} leaves the project"
            if anchor:
                assert resolved.suffix == ".md", f"{path.relative_to(ROOT)}: {target}"
                assert anchor in _anchors(resolved.read_text()), f"{path.relative_to(ROOT)}: no #{anchor}"
            checked += 1
    assert checked > 20


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    broken = tmp_path / "page.md"
    broken.write_text("# Page\n[ok](#page) [gone](missing.md) ```\n[in code](nowhere.md)\n```\n")
    assert _links(broken.read_text()) == ["#page", "missing.md"]
    assert _anchors(broken.read_text()) == {"page"}


def test_nothing_in_the_project_points_at_the_shared_folder() -> None:
    # Users have the project only; the design notes beside it are not shipped.
    outside = ".." + "/shared"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607 - git on PATH
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    pointing = [name for name in files if (ROOT / name).is_file() and outside in _text(ROOT / name)]
    assert pointing == []


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        return ""
