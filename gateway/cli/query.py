"""``dsgo query --as NODE.toml 'SPARQL'``: ask one's own node a federated question.

The command signs in at its own node as the node's party (with the node's keys), posts
the query to ``/federation/query``, shows progress while the walk goes on (on stderr),
and prints the answer as a table, then the report: which node supplied what, what
failed, what was withheld, and whether the answer is complete. Exit status: 0 for a
complete answer, 1 for an incomplete one (0 with ``--allow-partial``), 2 for an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson

from gateway.cli.args import absolute_iri
from gateway.config import load_node_settings
from gateway.errors import GatewayError
from gateway.vocab import load_vocab

__all__ = ["add_parser", "format_report", "format_table", "start_lines"]

_START = "# start:"


def start_lines(query: str) -> list[str]:
    """The start IRIs a query file names on its own ``# start: IRI`` comment lines: a query
    that only joins what other documents link to names no IRI to begin the walk at."""
    return [line[len(_START) :].strip() for line in query.splitlines() if line.startswith(_START)]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("query", help="a federated query, asked at one's own node")
    p.add_argument("--as", dest="config", type=Path, required=True, metavar="NODE.toml")
    p.add_argument("query", help="the SPARQL query, or @FILE to read it from a file")
    p.add_argument(
        "--start",
        action="append",
        default=[],
        type=absolute_iri,
        metavar="IRI",
        help="where to start (repeatable; default: the query's '# start: IRI' lines, else the IRIs it names)",
    )
    p.add_argument("--follow-all", action="store_true", help="follow every link (depth-bounded)")
    p.add_argument("--max-depth", type=int)
    p.add_argument("--max-documents", type=int)
    p.add_argument("--timeout", type=float)
    p.add_argument("--provenance", action="store_true", help="list the documents behind each row")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")
    p.add_argument(
        "--allow-partial", action="store_true", help="exit 0 on an incomplete answer too (default: exit 1)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.http.app import make_auth, outbound_http

    settings = load_node_settings(args.config)
    if settings.open:
        raise GatewayError(f"{settings.file}: an open node has no identity to query other nodes with")
    query = args.query
    if query.startswith("@"):
        try:
            query = Path(query[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise GatewayError(f"{query[1:]}: cannot be read ({exc.strerror})") from None
    start = args.start or start_lines(query)
    body: dict[str, Any] = {"query": query, "start": start, "provenance": args.provenance}
    if args.follow_all:
        body["follow"] = "all"
    for key in ("max_depth", "max_documents", "timeout"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)

    async def ask() -> dict[str, Any]:
        async with outbound_http() as http:
            auth = make_auth(settings, http, time.time)
            token = await auth.trust.tokens.token(settings.party_id, settings.public_url)  # type: ignore[attr-defined]
            headers = {"authorization": f"Bearer {token}", "accept": "application/x-ndjson"}
            return await _stream(http, settings.public_url + "/federation/query", body, headers, sys.stderr)

    started = time.monotonic()
    answer = asyncio.run(ask())
    if args.json:
        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_table(answer, load_vocab().curie))
        print()
        print(format_report(answer, time.monotonic() - started))
        if not start and not answer["report"]["documents"]:
            print("Nothing was fetched: the query names no IRI a registered node serves; give --start IRI")
    return 0 if answer["report"]["complete"] or args.allow_partial else 1


async def _stream(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], progress: TextIO
) -> dict[str, Any]:
    tty = progress.isatty()
    try:
        async with http.stream("POST", url, json=body, headers=headers, timeout=None) as answer:
            if answer.status_code != 200:
                await answer.aread()
                detail = answer.json().get("detail", answer.text) if answer.content else answer.reason_phrase
                raise GatewayError(f"the node refused the query ({answer.status_code}): {detail}")
            async for line in answer.aiter_lines():
                result = _event(line, progress, tty)
                if result is not None:
                    return result
    except httpx.HTTPError as exc:
        raise GatewayError(f"the node at {url} cannot be reached ({type(exc).__name__})") from None
    raise GatewayError("the node ended the answer without a result")


def _event(line: str, progress: TextIO, tty: bool) -> dict[str, Any] | None:
    """One line of the answer: progress is shown, an error raised, the result returned."""
    event = orjson.loads(line) if line.strip() else {}
    if "progress" in event:
        p = event["progress"]
        text = f"depth {p['depth']}: {p['documents']} documents from {p['nodes']} nodes"
        progress.write(("\r" + text) if tty else text + "\n")
        progress.flush()
    elif "error" in event:
        raise GatewayError(f"the query failed: {event['error'].get('detail', 'see the node log')}")
    elif "result" in event:
        if tty:
            progress.write("\n")
        result: dict[str, Any] = event["result"]
        return result
    return None


def _cell(term: dict[str, str] | None, curie: Any) -> str:
    if term is None:
        return ""
    if term["type"] == "uri":
        return str(curie(term["value"]))
    return term["value"]


def format_table(answer: dict[str, Any], curie: Any) -> str:
    """A readable table of a SELECT answer (or the ASK verdict, or the triple count)."""
    if answer["kind"] == "ask":
        return "yes" if answer["boolean"] else "no"
    if answer["kind"] == "graph":
        return str(answer["ntriples"]).rstrip()
    columns = answer["head"]["vars"]
    rows = [[_cell(b.get(v), curie) for v in columns] for b in answer["results"]["bindings"]]
    if answer.get("sources") is not None:
        columns = [*columns, "sources"]
        rows = [[*row, " ".join(src)] for row, src in zip(rows, answer["sources"], strict=True)]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    lines = [line, "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def format_report(answer: dict[str, Any], seconds: float | None = None) -> str:
    report = answer["report"]
    head = "complete" if report["complete"] else "INCOMPLETE: some sources are missing"
    if report["cut_short"]:
        head += f" (cut short by {report['cut_short']})"
    took = f" in {seconds * 1000:.0f} ms" if seconds is not None else ""
    lines = [f"Answer {head}: {report['documents']} documents, {report['requests']} requests{took}."]
    for party, node in report["nodes"].items():
        lines += _node_lines(party, node)
    lines += _registry_line(report.get("registry"))
    if report["not_fetched_unregistered_count"]:
        lines.append(
            f"  {report['not_fetched_unregistered_count']} links into unregistered namespaces not followed"
        )
    return "\n".join(lines)


def _node_lines(party: str, node: dict[str, Any]) -> list[str]:
    text = f"  {party} ({node['endpoint']}): {node['documents']} documents, {node['requests']} requests"
    text += f", {node['time_ms']:.0f} ms, read {node['read_at']}"
    if node["withheld_fields"]:
        text += f"; {node['withheld_fields']} fields withheld by its policy"
    lines = [text]
    for failure in node["failures"]:
        where = f" at {failure['path']}" if "path" in failure else ""
        lines.append(f"    failed{where}: {failure['reason']} {failure.get('detail', '')}".rstrip())
    if node.get("failed_sources"):
        names = ", ".join(node["failed_sources"])
        lines.append(f"    possibly incomplete: its source(s) {names} failed to read")
    return lines


def _registry_line(state: dict[str, Any] | None) -> list[str]:
    """The participant registry, when it is the cause: failing, or answering from cache."""
    if not state or state.get("status") == "ok":
        return []
    how = "cached answers serve" if state.get("serving_cached") else "no cached answer serves"
    return [f"  registry ({state['url']}): {state['status']} since {state['since']}: {state['error']}; {how}"]
