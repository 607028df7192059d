"""Where a cold start's init time goes: `python -X importtime` output, grouped by package.

Only what `import app` and the first request load counts: the child's own few imports before its
timer are left out. Self times are summed (a module's self time includes running its body, so
pydantic model building shows up under the module that defines the models, and client creation
at module level under `app`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")
HANDLER_MODULE = "app"
# Split these big packages by subpackage: their parts cost very different amounts.
_SPLIT_PACKAGES = ("aws_lambda_powertools", "relay")


@dataclass(frozen=True)
class ImportRow:
    self_us: int
    cumulative_us: int
    depth: int
    module: str


def parse_importtime(stderr: str) -> list[ImportRow]:
    rows = []
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            rows.append(ImportRow(int(match[1]), int(match[2]), len(match[3]) // 2, match[4]))
    return rows


def handler_imports(rows: list[ImportRow]) -> list[ImportRow]:
    """The rows `import app` produced (its subtree, itself included) and everything loaded after it."""
    handler_index = next(i for i, row in enumerate(rows) if row.module == HANDLER_MODULE and row.depth == 0)
    first = handler_index
    while first > 0 and rows[first - 1].depth > 0:
        first -= 1
    return rows[first:]


def _group(module: str) -> str:
    if module == HANDLER_MODULE:
        return "app (module body: clients, Tracer, router, settings)"
    parts = module.split(".")
    if parts[0] in _SPLIT_PACKAGES and len(parts) > 1:
        depth = 3 if parts[1] == "utilities" and len(parts) > 2 else 2
        return ".".join(parts[:depth])
    return parts[0]


def by_package(rows: list[ImportRow], top: int = 15) -> dict[str, float]:
    """Self time in ms per package (the largest `top`, then the rest as one line)."""
    totals: Counter[str] = Counter()
    for row in rows:
        totals[_group(row.module)] += row.self_us
    largest = totals.most_common(top)
    rest = sum(totals.values()) - sum(us for _, us in largest)
    grouped = {name: us / 1000 for name, us in largest}
    grouped[f"other ({len(totals) - len(largest)} packages)"] = rest / 1000
    return grouped


# The same self times in the families the cold-start discussion needs (first match wins).
FAMILIES = (
    (
        "app module body and relay.prefetch (boto3 clients, httpx.Client, Tracer(), router)",
        (HANDLER_MODULE, "relay.prefetch"),
    ),
    (
        "AWS SDK: boto3, botocore, s3transfer, urllib3, dateutil, jmespath (the floor has these)",
        (
            "boto3",
            "botocore",
            "s3transfer",
            "urllib3",
            "dateutil",
            "jmespath",
            "six",
        ),
    ),
    (
        "pydantic, pydantic_core, annotated_types, typing_inspection",
        (
            "pydantic",
            "pydantic_core",
            "annotated_types",
            "typing_inspection",
            "typing_extensions",
        ),
    ),
    (
        "httpx, httpcore, h11, anyio, sniffio, certifi, idna",
        (
            "httpx",
            "httpcore",
            "h11",
            "anyio",
            "sniffio",
            "certifi",
            "idna",
        ),
    ),
    (
        "Powertools, the rest (logging, metrics, tracing, idempotency, parameters, ...)",
        ("aws_lambda_powertools",),
    ),
    ("X-Ray SDK (aws_xray_sdk, wrapt)", ("aws_xray_sdk", "wrapt")),
    ("relay package (its pydantic models are built here)", ("relay",)),
    ("standard library and the rest", ("",)),
)


def _family(module: str) -> str:
    for family, prefixes in FAMILIES:
        if any(module == p or module.startswith(p + ".") or not p for p in prefixes):
            return family
    raise AssertionError("the last family matches everything")


def by_family(rows: list[ImportRow]) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for row in rows:
        totals[_family(row.module)] += row.self_us
    return {family: totals[family] / 1000 for family, _ in FAMILIES}


def attribute(stderr: str) -> dict[str, object]:
    rows = handler_imports(parse_importtime(stderr))
    return {
        "modules": len(rows),
        "total_self_ms": sum(row.self_us for row in rows) / 1000,
        "by_family_ms": by_family(rows),
        "by_package_ms": by_package(rows),
    }
