"""A federated answer's report as a picture: one bar per node, as long as it took.

Inline SVG from a template (``report.svg``, autoescaped; no script, no external file,
presentation attributes only, so the page's Content-Security-Policy needs no inline
styles). Each bar says which node supplied how many documents in how many requests, how
long it took, how many fields its policy withheld and which, and what failed; a failed node's bar
is red.
"""

from __future__ import annotations

from typing import Any

__all__ = ["report_picture"]

_ROW, _LEFT, _WIDTH = 46, 300, 360


def _line(node: dict[str, Any]) -> str:
    parts = [f"{node['documents']} documents", f"{node['requests']} requests", f"{node['time_ms']:g} ms"]
    if node.get("withheld_fields"):
        names = [str(n).rsplit("#", 1)[-1].rsplit("/", 1)[-1] for n in node.get("withheld_field_names") or ()]
        which = f" ({', '.join(names)})" if names else ""
        parts.append(f"{node['withheld_fields']} fields withheld by its policy{which}")
    failures = node.get("failures") or []
    if failures:
        parts.append("failed: " + ", ".join(str(f.get("reason", "?")) for f in failures[:3]))
    return "; ".join(parts)


def report_picture(report: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """What ``report.svg`` draws: its size, one bar per node, and the summary line."""
    nodes = report.get("nodes", {})
    longest = max([n["time_ms"] for n in nodes.values()] + [1.0])
    bars = []
    for i, (party, node) in enumerate(sorted(nodes.items())):
        bars.append(
            {
                "y": 10 + i * _ROW,
                "name": names.get(party, party),
                "where": "this node" if node.get("endpoint") == "local" else party,
                "width": round(max(2.0, _WIDTH * node["time_ms"] / longest), 1),
                "colour": "#c0392b" if node.get("failures") else "#2e86c1",
                "line": _line(node),
            }
        )
    done = (
        "complete" if report.get("complete") else f"incomplete ({report.get('cut_short') or 'a node failed'})"
    )
    summary = (
        f"Answer {done}: {report.get('documents', 0)} documents, "
        f"{report.get('requests', 0)} requests in {report.get('elapsed_ms', 0):g} ms"
    )
    height = _ROW * len(bars) + 40
    return {"width": _LEFT + _WIDTH + 20, "height": height, "left": _LEFT, "bars": bars, "summary": summary}
