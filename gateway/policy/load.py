"""Reading policy files: YAML, checked against ``policies/schema.json``, names resolved.

Every mistake is a ``PolicyError`` naming the file, the line and the rule: an unknown
prefix, property or operand, a malformed rule, a duplicate rule id. A file is used whole
or not at all; on reload a broken file keeps the previous policy in force (the caller
decides that, see ``gateway.access``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gateway.errors import PolicyError
from gateway.policy.model import Condition, PolicySet, Rule
from gateway.vocab import Vocab

__all__ = ["load_policies", "policy_files"]

_OPS = ("equals", "not_equals", "in", "before", "after", "at_most", "at_least", "exists")


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # package data: policies/schema.json of the source tree, gateway/_policies once installed
    schema = json.loads((resources.files("gateway._policies") / "schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


class _Loader(yaml.SafeLoader):
    """Safe YAML with dates left as text: the schema checks them and says where."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def policy_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def load_policies(files: Iterable[Path], vocab: Vocab) -> PolicySet:
    """Every rule of ``files``. A class or property in a namespace vocab/ defines in full
    (bot:, dsgo:) must be declared there, so that a misspelt field is an error, not a
    silent deny."""
    rules: list[Rule] = []
    names: list[str] = []
    digest = hashlib.sha256()
    seen: dict[str, str] = {}
    for path in files:
        text = _read(path)
        digest.update(str(path).encode() + b"\0" + text.encode())
        names.append(str(path))
        for rule in _rules(path, text, vocab):
            if rule.id in seen:
                raise PolicyError(path, rule.line, rule.id, f"the id is already used in {seen[rule.id]}")
            seen[rule.id] = f"{path}:{rule.line}"
            rules.append(rule)
    return PolicySet(tuple(rules), tuple(names), digest.hexdigest()[:16])


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(path, None, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(path, None, None, f"cannot be read ({exc})") from None


def _rules(path: Path, text: str, vocab: Vocab) -> list[Rule]:
    node, data = _parse(path, text)
    lines = _rule_lines(node)
    errors = sorted(_validator().iter_errors(_jsonable(data)), key=lambda e: list(e.absolute_path))
    if errors:
        raise _schema_error(path, data, lines, errors[0])
    return [_rule(path, lines.get(i, 0), raw, vocab) for i, raw in enumerate(data.get("rules", []))]


def _parse(path: Path, text: str) -> tuple[Any, Any]:
    """The YAML's node tree (for line numbers) and its data ({} for an empty file)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(
            path, line, None, f"not valid YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None
    return node, {} if data is None else data


def _schema_error(path: Path, data: Any, lines: dict[int, int], error: Any) -> PolicyError:
    """The first schema violation, named by file, line and rule where it is in a rule."""
    where = list(error.absolute_path)
    line, rule_id = None, None
    if len(where) >= 2 and where[0] == "rules" and isinstance(where[1], int):
        line = lines.get(where[1])
        raw = data["rules"][where[1]]
        rule_id = raw.get("id") if isinstance(raw, dict) else None
    at = "/".join(map(str, where[2:] if len(where) > 2 else where))
    return PolicyError(path, line, rule_id, f"{at or 'file'}: {error.message}")


def _jsonable(value: Any) -> Any:
    """YAML dates become ISO strings so the schema's ``format: date`` can check them."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _rule_lines(node: Any) -> dict[int, int]:
    """Line (1-based) of each item of the top-level ``rules`` sequence."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        if getattr(key, "value", None) == "rules" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}


def _rule(path: Path, line: int, raw: dict[str, Any], vocab: Vocab) -> Rule:
    rule_id = str(raw["id"])

    def fail(reason: str) -> PolicyError:
        return PolicyError(path, line, rule_id, reason)

    def iri(name: str, what: str, check: bool = True) -> str:
        expanded = vocab.expand(name)
        if expanded is None:
            prefix = name.partition(":")[0]
            raise fail(
                f"unknown prefix {prefix!r} in {what} {name!r} (prefixes come from vocab/context.jsonld)"
            )
        if check and not vocab.known(expanded):
            raise fail(f"unknown {what} {name!r}: {expanded} is not declared in vocab/")
        return expanded

    to = raw["to"]
    classes, iris, where = _selectors(raw["resources"], iri, fail)
    granted, exclude = _fields(raw["fields"], iri)
    start, until = _validity(raw.get("valid", {}), fail)
    return Rule(
        id=rule_id,
        file=str(path),
        line=line,
        effect=raw["effect"],
        parties=frozenset(to.get("parties", [])),
        roles=frozenset(to.get("roles", [])),
        anyone=bool(to.get("anyone", False)),
        classes=frozenset(classes),
        iris=tuple(iris),
        where=tuple(where),
        fields=granted,
        exclude=exclude,
        valid_from=start,
        valid_until=until,
        purpose=str(raw.get("purpose", "")),
    )


def _selectors(
    resources: Any, iri: Any, fail: Any
) -> tuple[set[str], list[re.Pattern[str]], list[Condition]]:
    """A rule's ``resources``: its classes, IRI patterns and conditions (none: ``all``)."""
    if resources == "all":
        return set(), [], []
    classes = {iri(c, "class") for c in resources.get("classes", [])}
    iris = [_pattern(p) for p in resources.get("iris", [])]
    where = [_condition(cond, iri, fail) for cond in resources.get("where", [])]
    return classes, iris, where


def _fields(fields: Any, iri: Any) -> tuple[frozenset[str] | None, frozenset[str]]:
    """A rule's ``fields``: (the fields granted, None = all; the fields excluded)."""
    if fields == "all":
        return None, frozenset()
    if isinstance(fields, dict):
        return None, frozenset(iri(f, "property") for f in fields["all_except"])
    return frozenset(iri(f, "property") for f in fields), frozenset()


def _validity(valid: dict[str, Any], fail: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    start, until = _date(valid.get("from")), _date(valid.get("until"))
    if start and until and until <= start:
        raise fail("valid.until must be after valid.from")
    return start, until


def _condition(cond: dict[str, Any], iri: Any, fail: Any) -> Condition:
    ops = [k for k in cond if k in _OPS]
    unknown = [k for k in cond if k not in (*_OPS, "via", "property")]
    if unknown or len(ops) != 1:
        raise fail(f"a condition needs exactly one operand of {', '.join(_OPS)}; got {sorted(cond)}")
    hops = []
    for hop in cond.get("via", []):
        backwards = hop.startswith("^")
        hops.append((iri(hop.lstrip("^"), "link"), backwards))
    op = ops[0]
    value = cond[op]
    if op in ("at_most", "at_least") and not isinstance(value, int | float):
        raise fail(f"{op} needs a number")
    return Condition(tuple(hops), iri(cond["property"], "property"), op, value)


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in text.split("*")) + "$")


def _date(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
