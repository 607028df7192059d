"""What the docs' tables are checked against: the relay's source text, read without importing it.

The relay's modules move (they are grouped by role as the project grows), so nothing here imports
them: the reason codes and log lines are found by parsing every file under functions/reschedule.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_DIR = ROOT / "functions" / "reschedule"
DOCS_DIR = ROOT / "docs"
README = ROOT / "README.md"

# The class every deliberate error answer is built from; subclasses are found by the scan.
ERROR_BASE = "RelayError"
# What the relay's logger calls are named (Powertools' Logger, one per module).
LOG_LEVELS = ("debug", "info", "warning", "error", "exception", "critical")
HTTP_ERROR_STATUSES = range(400, 600)
REASON_CODE = re.compile(r"^[a-z]+(?:_[a-z]+)*$")


def source_files() -> list[Path]:
    return sorted(CODE_DIR.rglob("*.py"))


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS_DIR.rglob("*.md"))]


def page(relative: str) -> str:
    return (DOCS_DIR / relative).read_text()


# ---- Markdown --------------------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The text under the heading `heading` (any level), up to the next heading of that level or above."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, flags=re.MULTILINE)
    if match is None:
        raise LookupError(f"no heading {heading!r}")
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text`, as rows keyed by the header cells."""
    found: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if (
            lines[index].startswith("|")
            and index + 1 < len(lines)
            and re.match(r"^\|[-| :]+\|$", lines[index + 1])
        ):
            header = _cells(lines[index])
            rows = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(dict(zip(header, _cells(lines[index]), strict=False)))
                index += 1
            found.append(rows)
        else:
            index += 1
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# ---- Reason codes ----------------------------------------------------------------------------------


REFUSAL = "Refusal"
REFUSAL_STATUS = 422


@dataclass(frozen=True)
class Param:
    """A code or status a factory takes from its caller: the parameter's position, name and default."""

    index: int
    name: str
    default: str | int | None


Spec = str | int | Param | None


@dataclass
class Builder:
    """Something that makes an error answer: the base class, a subclass, or a factory function."""

    params: list[str]
    method: bool
    specs: dict[str, Spec] = field(default_factory=dict)
    path: Path | None = None  # where a factory function is defined (None: a class)


@dataclass(frozen=True)
class Answer:
    code: str
    status: int | None
    where: str


def _constants(trees: dict[Path, ast.Module]) -> dict[str, str | int]:
    """Module- and class-level `NAME = "literal"` assignments, so `code=IN_PROGRESS` resolves too."""
    values: dict[str, str | int] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef):
                for statement in node.body:
                    target, value = _assignment(statement)
                    if target and isinstance(value, ast.Constant) and isinstance(value.value, str | int):
                        values[target] = value.value
    return values


def _assignment(statement: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        return (target.id if isinstance(target, ast.Name) else None), statement.value
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id, statement.value
    return None, None


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _error_classes(trees: dict[Path, ast.Module]) -> dict[str, list[Builder]]:
    classes = {
        node.name: node
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    if ERROR_BASE not in classes:
        raise LookupError(f"no class {ERROR_BASE} under {CODE_DIR}")
    base = classes[ERROR_BASE]
    fields = [
        (s.target.id, s.value)
        for s in base.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and "ClassVar" not in ast.unparse(s)
    ]
    names = [name for name, _ in fields]
    defaults = {
        name: value.value
        for name, value in fields
        if isinstance(value, ast.Constant) and value.value is not None
    }
    builders = {ERROR_BASE: [_base_builder(names, defaults)]}
    if REFUSAL in classes:  # a provider's refusal: the client answers it as a 422 ProviderError
        builders[REFUSAL] = [
            Builder(["code"], method=False, specs={"code": Param(0, "code", None), "status": 422})
        ]
    grown = True
    while grown:  # subclasses of subclasses, in any order
        grown = False
        for name, node in classes.items():
            if name not in builders and any(_base_name(b) in builders for b in node.bases):
                builders[name] = [_base_builder(names, defaults)]
                grown = True
    return builders


def _base_builder(names: list[str], defaults: Mapping[str, object]) -> Builder:
    def param(name: str) -> Param:
        default = defaults.get(name)
        return Param(names.index(name), name, default if isinstance(default, str | int) else None)

    return Builder(names, method=False, specs={"code": param("code"), "status": param("status")})


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class _Scan:
    def __init__(self) -> None:
        self.trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in source_files()}
        self.constants = _constants(self.trees)
        self.builders = _error_classes(self.trees)
        self.functions = [
            (path, node)
            for path, tree in self.trees.items()
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
        ]
        self._find_factories()

    def _find_factories(self) -> None:
        """A function that returns a built error is a builder too, taking what it passes on."""
        done: set[int] = set()
        grown = True
        while grown:
            grown = False
            for path, function in self.functions:
                if id(function) in done:
                    continue
                params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
                assigned = {
                    target.id: node.value
                    for node in ast.walk(function)
                    if isinstance(node, ast.Assign)
                    for target in node.targets
                    if isinstance(target, ast.Name)
                }
                for node in ast.walk(function):
                    value = node.value if isinstance(node, ast.Return) else None
                    if isinstance(value, ast.Name):  # `error = Builder(...); ...; return error`
                        value = assigned.get(value.id)
                    specs = self._specs(value, function, path) if isinstance(value, ast.Call) else []
                    if specs:
                        method = bool(params) and params[0] in {"self", "cls"}
                        for spec in specs:
                            builder = Builder(params, method, spec, path)
                            self.builders.setdefault(function.name, []).append(builder)
                        done.add(id(function))
                        grown = True
                        break

    def _specs(self, call: ast.Call, function: ast.FunctionDef | None, path: Path) -> list[dict[str, Spec]]:
        """What the builders of this name make from this call (a module's own one, if it has one)."""
        candidates = self.builders.get(_callee(call) or "", [])
        local = [builder for builder in candidates if builder.path == path]
        return [
            {key: self._resolve(builder, spec, call, function) for key, spec in builder.specs.items()}
            for builder in local or candidates
        ]

    def _resolve(
        self, builder: Builder, spec: Spec, call: ast.Call, function: ast.FunctionDef | None
    ) -> Spec:
        if not isinstance(spec, Param):
            return spec
        index = spec.index - (1 if builder.method else 0)
        argument: ast.expr | None = next((k.value for k in call.keywords if k.arg == spec.name), None)
        if argument is None and 0 <= index < len(call.args) and not isinstance(call.args[index], ast.Starred):
            argument = call.args[index]
        if argument is None:
            return spec.default
        return self._value(argument, function)

    def _value(self, node: ast.expr, function: ast.FunctionDef | None) -> Spec:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int):
            return node.value
        name = (
            node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        )
        if isinstance(node, ast.Attribute) and not node.attr.isupper():
            return None  # `refusal.code` is a value passed on, not a constant such as `errors.IN_PROGRESS`
        if function is not None and isinstance(node, ast.Name):
            positional = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
            defaults = dict(
                zip(
                    positional[len(positional) - len(function.args.defaults) :],
                    function.args.defaults,
                    strict=True,
                )
            )
            defaults |= {
                a.arg: d
                for a, d in zip(function.args.kwonlyargs, function.args.kw_defaults, strict=True)
                if d
            }
            if node.id in positional or node.id in defaults:
                default = defaults.get(node.id)
                literal = default.value if isinstance(default, ast.Constant) else None
                index = positional.index(node.id) if node.id in positional else -1
                return Param(index, node.id, literal if isinstance(literal, str | int) else None)
        return self.constants.get(name or "")

    def _keywords(self, call: ast.Call) -> list[dict[str, Spec]]:
        """Any call given both `status=<4xx/5xx>` and `code=...`, e.g. `dataclasses.replace(error, ...)`."""
        given = {k.arg: self._value(k.value, None) for k in call.keywords if k.arg in {"status", "code"}}
        status = given.get("status")
        if isinstance(status, int) and status in HTTP_ERROR_STATUSES and isinstance(given.get("code"), str):
            return [given]
        return []

    def answers(self) -> Iterator[Answer]:
        for path, tree in self.trees.items():
            enclosing = {
                id(child): function
                for function in ast.walk(tree)
                if isinstance(function, ast.FunctionDef)
                for child in ast.walk(function)
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for specs in self._specs(node, enclosing.get(id(node)), path) or self._keywords(node):
                    code, status = specs.get("code"), specs.get("status")
                    # A Refusal of a booking moved elsewhere is settled by the client (a 200, or a 409).
                    settled = code == "booking_moved_elsewhere" and status == REFUSAL_STATUS
                    if isinstance(code, str) and REASON_CODE.match(code) and not settled:
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        yield Answer(code, status if isinstance(status, int) else None, where)


def reason_codes() -> dict[str, set[int | None]]:
    """Every reason code the relay can answer with, and the statuses it comes with (None: not literal)."""
    found: dict[str, set[int | None]] = {}
    for answer in _Scan().answers():
        found.setdefault(answer.code, set()).add(answer.status)
    return found


# ---- Log lines -------------------------------------------------------------------------------------


def log_lines() -> dict[str, set[str]]:
    """Every constant message the relay logs, and the levels it logs it at."""
    found: dict[str, set[str]] = {}
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, set()).add(node.func.attr)
    return found


# ---- Providers and bounds --------------------------------------------------------------------------


def provider_names() -> set[str]:
    """The providers that have an adapter: `name = "..."` in a module under a providers/ folder."""
    names: set[str] = set()
    for path in source_files():
        if path.parent.name == "providers":
            names |= set(
                re.findall(r'^\s+name(?:: ClassVar\[str\])? = "([a-z0-9]+)"', path.read_text(), re.M)
            )
    return names


def integer_constant(name: str, directory: Path = CODE_DIR) -> int:
    """A module-level `NAME = <integer expression>` (e.g. `64 * 1024`) in the source under `directory`."""
    for path in sorted(directory.rglob("*.py")):
        for statement in ast.parse(path.read_text()).body:
            target, value = _assignment(statement)
            if target == name and value is not None:
                result = eval(compile(ast.Expression(value), str(path), "eval"), {"__builtins__": {}})  # noqa: S307 - arithmetic on literals
                if isinstance(result, int | float):
                    return int(result)
    raise LookupError(f"no constant {name} under {directory}")


def metric_names() -> set[str]:
    """Every metric name the relay emits: the string literals in `add_metric(name=...)` calls."""
    names: set[str] = set()
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _callee(node) == "add_metric":
                for keyword in node.keywords:
                    if keyword.arg == "name":
                        names |= {
                            c.value
                            for c in ast.walk(keyword.value)
                            if isinstance(c, ast.Constant) and isinstance(c.value, str)
                        }
    return names


def template_parameters() -> set[str]:
    """The names under `Parameters:` in template.yaml (read as text: the file uses CloudFormation tags)."""
    text = (ROOT / "template.yaml").read_text()
    match = re.search(r"^Parameters:\n(.*?)(?=^\S)", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise LookupError("template.yaml has no Parameters")
    return set(re.findall(r"^  ([A-Za-z0-9]+):", match.group(1), flags=re.MULTILINE))
