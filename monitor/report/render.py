"""One renderer per format, each from a `Report` alone: JSON (the stable form, documented
field by field in the README), CSV (one row per target), Markdown and HTML (tables and
the two inline-SVG charts of monitor.report.charts).

Target names, reasons, hints and tamper summaries are untrusted text: each format escapes
it its own way (HTML entities; Markdown's specials; CSV cells that a spreadsheet would
run as a formula get a leading apostrophe).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from monitor.report.charts import daily_availability_svg, incident_timeline_svg
from monitor.report.model import Figures, Group, Report, TargetReport, iso

# Bumped only when a field changes meaning or goes away; new fields keep the version.
JSON_FORMAT_VERSION = 1
FORMATS = ("md", "csv", "json", "html")


def render(report: Report, format_name: str) -> str:
    renderers: dict[str, Callable[[Report], str]] = {
        "json": render_json,
        "csv": render_csv,
        "md": render_markdown,
        "html": render_html,
    }
    return renderers[format_name](report)


# --- JSON ------------------------------------------------------------------------------


def _figures(figures: Figures) -> dict[str, Any]:
    return {
        "availability_percent": figures.availability_percent,
        "up_seconds": figures.up_seconds,
        "down_seconds": figures.down_seconds,
        "unknown_seconds": figures.unknown_seconds,
        "blind_seconds": figures.blind_seconds,
        "maintenance_seconds": figures.maintenance_seconds,
        "incident_count": figures.incidents,
        "longest_outage_seconds": figures.longest_outage_seconds,
        "mttr_seconds": figures.mttr_seconds,
    }


def _target(target: TargetReport) -> dict[str, Any]:
    p = target.posture
    return {
        "name": target.name,
        "country": target.country,
        "sector": target.sector,
        "active": target.active,
        **_figures(target.figures),
        "incidents": [
            {
                "id": i.id,
                "started_at": iso(i.started_at),
                "ended_at": iso(i.ended_at),
                "duration_seconds": i.duration_seconds,
                "reason": i.reason,
            }
            for i in target.incidents
        ],
        "posture": {
            "certificate_valid": p.certificate_valid,
            "tls_version": p.tls_version,
            "tls13": p.tls13,
            "dnssec_status": p.dnssec_status,
            "dnssec_signed": p.dnssec_signed,
            "dnssec_valid": p.dnssec_valid,
            "nearest_expiry": iso(p.nearest_expiry),
            "days_to_expiry": p.days_to_expiry,
        },
    }


def to_json_object(report: Report) -> dict[str, Any]:
    """The report as the JSON-ready dict the README documents field by field."""
    posture = report.posture
    return {
        "format_version": JSON_FORMAT_VERSION,
        "generated_at": iso(report.generated_at),
        "period": {
            "from": iso(report.start),
            "to": iso(report.end),
            "seconds": report.end - report.start,
        },
        "vantage": report.vantage,
        "countries_filter": list(report.countries_filter),
        "blind_seconds": report.blind_seconds,
        "maintenance_seconds": report.maintenance_seconds,
        "region": {"targets": report.region.targets, **_figures(report.region.figures)},
        "countries": [
            {"country": g.key, "name": g.name, "targets": g.targets, **_figures(g.figures)}
            for g in report.countries
        ],
        "sectors": [
            {"sector": g.key, "targets": g.targets, **_figures(g.figures)} for g in report.sectors
        ],
        "targets": [_target(t) for t in report.targets],
        "outages": [
            {
                "id": o.id,
                "scope": o.scope,
                "country": o.country,
                "started_at": iso(o.started_at),
                "ended_at": iso(o.ended_at),
                "duration_seconds": o.duration_seconds,
                "affected": list(o.affected),
                "dominant_reason": o.dominant_reason,
                "hint": o.hint,
            }
            for o in report.outages
        ],
        "blind_spells": [
            {
                "started_at": iso(b.started_at),
                "ended_at": iso(b.ended_at),
                "duration_seconds": b.duration_seconds,
            }
            for b in report.blind_spells
        ],
        "posture": {
            "targets": posture.targets,
            "with_tls": posture.with_tls,
            "certificates_valid": posture.certificates_valid,
            "tls13": posture.tls13,
            "dnssec_signed": posture.dnssec_signed,
            "dnssec_valid": posture.dnssec_valid,
            "nearest_expiry_target": posture.nearest_expiry_target,
            "nearest_expiry": iso(posture.nearest_expiry),
            "days_to_nearest_expiry": posture.days_to_nearest_expiry,
        },
        "daily": [
            {"country": d.country, "day": d.day, "availability_percent": d.availability_percent}
            for d in report.daily
        ],
        "tamper": [
            {
                "id": s.id,
                "target": s.target,
                "kind": s.kind,
                "country": s.country,
                "raised_at": iso(s.raised_at),
                "cleared_at": iso(s.cleared_at),
                "cleared_by": s.cleared_by,
                "summary": s.summary,
            }
            for s in report.tamper
        ],
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json_object(report), indent=2, ensure_ascii=False) + "\n"


# --- CSV -------------------------------------------------------------------------------

CSV_COLUMNS = (
    "target",
    "country",
    "sector",
    "availability_percent",
    "up_seconds",
    "down_seconds",
    "unknown_seconds",
    "blind_seconds",
    "maintenance_seconds",
    "incident_count",
    "longest_outage_seconds",
    "mttr_seconds",
    "certificate_valid",
    "tls_version",
    "dnssec_status",
    "dnssec_valid",
    "days_to_expiry",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"
    text = str(value)
    # A spreadsheet runs a cell starting with = + - @ (or a tab/CR) as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(report: Report) -> str:
    """One row per target, availability figures and posture; blank means none / unknown."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in report.targets:
        row = _target(t)
        posture = row["posture"]
        values = [row["name"], t.country, t.sector]
        values += [row[c] for c in CSV_COLUMNS[3:12]]
        values += [posture[c] for c in CSV_COLUMNS[12:]]
        writer.writerow([_cell(v) for v in values])
    return out.getvalue()


# --- shared text helpers ----------------------------------------------------------------


def percent(value: float | None) -> str:
    return "no data" if value is None else f"{value:.3f} %"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min" + (f" {secs:02d} s" if secs else "")
    return f"{secs} s"


def _when(moment: float | None, open_text: str = "open") -> str:
    text = iso(moment)
    return open_text if text is None else text.replace("T", " ").replace("Z", " UTC")


def _yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def _group_row(label: str, group: Group) -> list[str]:
    f = group.figures
    return [
        label,
        str(group.targets),
        percent(f.availability_percent),
        str(f.incidents),
        duration(f.longest_outage_seconds),
        duration(f.mttr_seconds),
        duration(f.down_seconds),
        duration(f.blind_seconds),
        duration(f.maintenance_seconds),
    ]


GROUP_HEADER = [
    "",
    "targets",
    "availability",
    "incidents",
    "longest outage",
    "MTTR",
    "down (target-time)",
    "blind (target-time)",
    "maintenance (target-time)",
]


def _sections(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as (title, header, rows) of plain, unescaped text; each
    markup renderer escapes every cell."""
    sections: list[tuple[str, list[str], list[list[str]]]] = []
    sections.append(
        (
            "Outages of countries and the region",
            ["scope", "country", "start", "end", "duration", "targets", "reason", "shared"],
            [
                [
                    o.scope,
                    o.country or "",
                    _when(o.started_at),
                    _when(o.ended_at),
                    duration(o.duration_seconds),
                    str(len(o.affected)),
                    o.dominant_reason or "",
                    o.hint or "",
                ]
                for o in report.outages
            ],
        )
    )
    groups = [_group_row("region", report.region)]
    sections.append(("Region", GROUP_HEADER, groups))
    sections.append(
        (
            "Countries",
            GROUP_HEADER,
            [_group_row(f"{g.key} {g.name}", g) for g in report.countries],
        )
    )
    sections.append(("Sectors", GROUP_HEADER, [_group_row(g.key, g) for g in report.sectors]))
    sections.append(
        (
            "Targets",
            ["target", "country", "sector", "availability", "incidents", "longest outage", "MTTR"],
            [
                [
                    t.name,
                    t.country,
                    t.sector,
                    percent(t.figures.availability_percent),
                    str(t.figures.incidents),
                    duration(t.figures.longest_outage_seconds),
                    duration(t.figures.mttr_seconds),
                ]
                for t in report.targets
            ],
        )
    )
    sections.append(
        (
            "Incidents",
            ["target", "start", "end", "duration", "reason"],
            [
                [
                    t.name,
                    _when(i.started_at),
                    _when(i.ended_at),
                    duration(i.duration_seconds),
                    i.reason or "",
                ]
                for t in report.targets
                for i in t.incidents
            ],
        )
    )
    sections.append(
        (
            "The monitor's blind spells",
            ["start", "end", "within the period"],
            [
                [_when(b.started_at), _when(b.ended_at), duration(b.duration_seconds)]
                for b in report.blind_spells
            ],
        )
    )
    p = report.posture
    sections.append(
        (
            f"Posture at {_when(report.end)}",
            ["", "targets"],
            [
                ["targets", str(p.targets)],
                ["with a TLS probe", str(p.with_tls)],
                ["valid certificates", str(p.certificates_valid)],
                ["TLS 1.3", str(p.tls13)],
                ["DNSSEC signed", str(p.dnssec_signed)],
                ["DNSSEC signed and valid", str(p.dnssec_valid)],
                [
                    "nearest expiry",
                    "–"
                    if p.nearest_expiry_target is None
                    else f"{p.nearest_expiry_target}: {_when(p.nearest_expiry)} "
                    f"({p.days_to_nearest_expiry:.1f} days)",
                ],
            ],
        )
    )
    sections.append(
        (
            "Posture per target",
            ["target", "certificate valid", "TLS", "DNSSEC", "days to expiry"],
            [
                [
                    t.name,
                    _yes_no(t.posture.certificate_valid),
                    t.posture.tls_version or "–",
                    t.posture.dnssec_status or "–",
                    "–" if t.posture.days_to_expiry is None else f"{t.posture.days_to_expiry:.1f}",
                ]
                for t in report.targets
            ],
        )
    )
    sections.append(
        (
            "Tamper signals",
            ["target", "kind", "raised", "cleared", "summary"],
            [
                [
                    s.target,
                    s.kind,
                    _when(s.raised_at),
                    _when(s.cleared_at, "still raised")
                    + (f" ({s.cleared_by})" if s.cleared_by else ""),
                    s.summary,
                ]
                for s in report.tamper
            ],
        )
    )
    return sections


def _summary_lines(report: Report, untrusted: Callable[[str], str]) -> list[str]:
    """The report's opening facts; `untrusted` escapes the one piece of untrusted text in
    them (the vantage name), the rest is govwatch's own."""
    countries = ", ".join(report.countries_filter) or "every country"
    return [
        f"Period: {_when(report.start)} to {_when(report.end)}, {countries}; "
        f"vantage: {untrusted(report.vantage or 'unnamed')}; "
        f"generated {_when(report.generated_at)}.",
        f"Region availability: {percent(report.region.figures.availability_percent)}, "
        "time-weighted: up / (up + down).",
        f"Left out: the monitor's own blind time, {duration(report.blind_seconds)} "
        f"(wall clock), and maintenance windows, {duration(report.maintenance_seconds)} "
        "(target-time).",
    ]


# --- Markdown --------------------------------------------------------------------------

_MARKDOWN_SPECIALS = "\\`*_{}[]()#+!|~"


def markdown_escape(text: str) -> str:
    """Untrusted text safe in a Markdown table cell: specials backslashed, HTML made
    entities, line breaks flattened."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + c if c in _MARKDOWN_SPECIALS else c for c in text)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["None in the period.", ""]
    lines = ["| " + " | ".join(markdown_escape(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(markdown_escape(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _data_uri(svg: str) -> str:
    # base64: no character of the SVG can end the Markdown image early.
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def render_markdown(report: Report) -> str:
    """Markdown with the charts embedded as data: URI images (one self-contained file,
    also on stdout; a renderer that refuses data: images shows the alt text)."""
    lines = ["# govwatch availability report", ""]
    lines += [f"- {line}" for line in _summary_lines(report, markdown_escape)]
    lines += [""]
    lines += [
        f"![Availability per country per day]({_data_uri(daily_availability_svg(report, standalone=True))})",
        "",
        f"![Incidents on a timeline]({_data_uri(incident_timeline_svg(report, standalone=True))})",
        "",
    ]
    for title, header, rows in _sections(report):
        lines += [f"## {markdown_escape(title)}", ""]
        lines += _markdown_table(header, rows)
    return "\n".join(lines)


# --- HTML ------------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f2f2f2; }
figure { margin: 0 0 1.2em 0; }
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "<p>None in the period.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    """One self-contained page: inline CSS and SVG, no script, and a Content-Security-Policy
    that forbids fetching anything, so opening it offline or from mail loads nothing."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<title>govwatch availability report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>govwatch availability report</h1>",
    ]
    parts += [f"<p>{line}</p>" for line in _summary_lines(report, escape)]
    parts += [
        "<h2>Availability per country per day</h2>",
        f"<figure>{daily_availability_svg(report)}</figure>",
        "<h2>Incidents on a timeline</h2>",
        f"<figure>{incident_timeline_svg(report)}</figure>",
    ]
    for title, header, rows in _sections(report):
        parts += [f"<h2>{escape(title)}</h2>", _html_table(header, rows)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
