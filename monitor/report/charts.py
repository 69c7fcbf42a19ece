"""The report's two charts as inline SVG, drawn here: availability per country per UTC
day (a heat strip) and incidents on a timeline. No script, no external font, stylesheet
or image: an HTML report opened offline fetches nothing.

Every piece of text (country codes, target names, reasons) is escaped: target names and
hints come from the config and from the network, and are untrusted.
"""

from __future__ import annotations

from html import escape

from monitor.report.model import Report, iso

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # only in a standalone file (the data: URI)
LABEL_WIDTH = 110
PLOT_WIDTH = 600
ROW_HEIGHT = 18
NO_DATA_COLOUR = "#d0d0d0"


def availability_colour(percent: float | None) -> str:
    """Green when (nearly) always up, through yellow and orange to red."""
    if percent is None:
        return NO_DATA_COLOUR
    if percent >= 99.9:
        return "#2e7d32"
    if percent >= 99.0:
        return "#9ccc65"
    if percent >= 95.0:
        return "#fbc02d"
    if percent >= 90.0:
        return "#f57c00"
    return "#c62828"


def _svg(width: int, height: int, body: list[str], title: str, standalone: bool) -> str:
    # Inline in HTML5 an <svg> needs no namespace; a standalone .svg (a data: URI) does.
    namespace = f' xmlns="{SVG_NAMESPACE}"' if standalone else ""
    return (
        f'<svg{namespace} width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def daily_availability_svg(report: Report, *, standalone: bool = False) -> str:
    """One row per country, one cell per UTC day, coloured by that day's availability."""
    countries = [g.key for g in report.countries]
    days = sorted({d.day for d in report.daily})
    cell = max(3.0, min(24.0, PLOT_WIDTH / max(1, len(days))))
    width = int(LABEL_WIDTH + cell * len(days) + 10)
    height = ROW_HEIGHT * (len(countries) + 1) + 10
    body: list[str] = []
    column = {day: index for index, day in enumerate(days)}
    row = {code: index for index, code in enumerate(countries)}
    for code, index in row.items():
        y = index * ROW_HEIGHT + ROW_HEIGHT - 5
        body.append(f'<text x="4" y="{y}">{escape(code)}</text>')
    for d in report.daily:
        if d.country not in row:
            continue
        x = LABEL_WIDTH + column[d.day] * cell
        y = row[d.country] * ROW_HEIGHT
        shown = "no data" if d.availability_percent is None else f"{d.availability_percent:.3f} %"
        body.append(
            f'<rect x="{x:.1f}" y="{y}" width="{max(cell - 1, 1):.1f}" height="{ROW_HEIGHT - 2}" '
            f'fill="{availability_colour(d.availability_percent)}">'
            f"<title>{escape(f'{d.country} {d.day}: {shown}')}</title></rect>"
        )
    if days:
        axis_y = len(countries) * ROW_HEIGHT + 12
        body.append(f'<text x="{LABEL_WIDTH}" y="{axis_y}">{escape(days[0])}</text>')
        body.append(
            f'<text x="{width - 10}" y="{axis_y}" text-anchor="end">{escape(days[-1])}</text>'
        )
    return _svg(width, height, body, "Availability per country per day (UTC)", standalone)


def incident_timeline_svg(report: Report, *, standalone: bool = False) -> str:
    """The period left to right; rows: the monitor's blind spells, region outages, then per
    country its outages (tall bars) and its targets' incidents (thin bars)."""
    span = max(report.end - report.start, 1.0)
    rows = ["monitor blind", "region", *(g.key for g in report.countries)]
    width = LABEL_WIDTH + PLOT_WIDTH + 10
    height = ROW_HEIGHT * (len(rows) + 1) + 10
    body: list[str] = []

    def bar(row: int, begin: float, end: float | None, colour: str, tall: bool, tip: str) -> None:
        finish = report.end if end is None else min(end, report.end)
        left = LABEL_WIDTH + PLOT_WIDTH * (max(begin, report.start) - report.start) / span
        right = LABEL_WIDTH + PLOT_WIDTH * (finish - report.start) / span
        bar_height = ROW_HEIGHT - 4 if tall else 6
        top = row * ROW_HEIGHT + (ROW_HEIGHT - bar_height) / 2
        body.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left, 1.5):.1f}" '
            f'height="{bar_height}" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )

    for index, label in enumerate(rows):
        y = index * ROW_HEIGHT + ROW_HEIGHT - 5
        body.append(f'<text x="4" y="{y}">{escape(label)}</text>')
        body.append(
            f'<line x1="{LABEL_WIDTH}" x2="{LABEL_WIDTH + PLOT_WIDTH}" '
            f'y1="{index * ROW_HEIGHT + ROW_HEIGHT / 2}" y2="{index * ROW_HEIGHT + ROW_HEIGHT / 2}" '
            f'stroke="#e0e0e0"/>'
        )
    for spell in report.blind_spells:
        bar(
            0,
            spell.started_at,
            spell.ended_at,
            "#757575",
            True,
            f"blind from {iso(spell.started_at)}",
        )
    country_row = {label: index for index, label in enumerate(rows) if index >= 2}
    for outage in report.outages:
        row = 1 if outage.scope == "region" else country_row.get(outage.country or "", -1)
        if row >= 0:
            tip = f"{outage.scope} outage {outage.country or ''} from {iso(outage.started_at)}"
            bar(row, outage.started_at, outage.ended_at, "#c62828", True, tip)
    for target in report.targets:
        row = country_row.get(target.country, -1)
        for incident in target.incidents:
            if row >= 0:
                tip = f"{target.name}: {incident.reason or 'down'} from {iso(incident.started_at)}"
                bar(row, incident.started_at, incident.ended_at, "#ef6c00", False, tip)
    axis_y = len(rows) * ROW_HEIGHT + 12
    body.append(f'<text x="{LABEL_WIDTH}" y="{axis_y}">{escape(iso(report.start) or "")}</text>')
    body.append(
        f'<text x="{LABEL_WIDTH + PLOT_WIDTH}" y="{axis_y}" text-anchor="end">'
        f"{escape(iso(report.end) or '')}</text>"
    )
    return _svg(width, height, body, "Incidents on a timeline", standalone)
