"""A tile map of the monitored countries: one square each, placed roughly where the country is.

Rendered with Altair (Vega-Lite ships inside Streamlit), so it draws offline: no map
tiles, no GeoJSON, nothing fetched.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import altair as alt
import pandas as pd  # type: ignore[import-untyped]

from dashboard.source import DOWN, MAINTENANCE, UNKNOWN, UP
from monitor.countries import country_name

# (column, row) on a 5 x 5 grid, west to east and north to south.
TILE_POSITIONS: Mapping[str, tuple[int, int]] = {
    "SI": (0, 0),
    "HR": (1, 0),
    "RO": (3, 0),
    "MD": (4, 0),
    "BA": (1, 1),
    "RS": (2, 1),
    "BG": (3, 1),
    "ME": (1, 2),
    "XK": (2, 2),
    "TR": (4, 2),
    "AL": (1, 3),
    "MK": (2, 3),
    "GR": (2, 4),
}
GRID_COLUMNS = 1 + max(col for col, _ in TILE_POSITIONS.values())
GRID_ROWS = 1 + max(row for _, row in TILE_POSITIONS.values())

# Availability bands, best first, with colours that survive a projector.
BANDS: tuple[tuple[str, float, str], ...] = (
    ("all up", 1.0, "#2e7d32"),
    ("≥ 90 % up", 0.9, "#9ccc65"),
    ("≥ 50 % up", 0.5, "#ffa726"),
    ("< 50 % up", 0.0, "#c62828"),
)
UNKNOWN_BAND = ("unknown", "#9e9e9e")
MAINTENANCE_BAND = ("maintenance", "#5e35b1")  # planned: purple, unlike any failure colour
NO_TARGETS_BAND = ("no targets", "#eceff1")

# One colour and one label per target state, wherever a state is shown.
STATE_COLOURS: Mapping[str, str] = {
    UP: BANDS[0][2],
    DOWN: BANDS[-1][2],
    MAINTENANCE: MAINTENANCE_BAND[1],
    UNKNOWN: UNKNOWN_BAND[1],
}
# Shapes, not emoji (a kiosk browser may have no emoji font), one per state; the colour
# is in the tiles and the history strip.
STATE_LABELS: Mapping[str, str] = {
    UP: "● up",
    DOWN: "▲ down",
    MAINTENANCE: "◆ maintenance",
    UNKNOWN: "○ unknown",
}


STRIP_SLOT_PX = 4
STRIP_HEIGHT_PX = 14


def history_strip(states: object) -> str:
    """A list of states, oldest first, as an SVG image (a data URL): one slot per state in
    STATE_COLOURS, so the strip needs no font and fetches nothing. '' without states."""
    if not isinstance(states, list) or not states:
        return ""
    slots = "".join(
        f'<rect x="{index * STRIP_SLOT_PX}" width="{STRIP_SLOT_PX - 1}" '
        f'height="{STRIP_HEIGHT_PX}" fill="{STATE_COLOURS.get(str(state), STATE_COLOURS[UNKNOWN])}"/>'
        for index, state in enumerate(states)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{STRIP_SLOT_PX * len(states)}" '
        f'height="{STRIP_HEIGHT_PX}">{slots}</svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def state_label(state: str) -> str:
    """A state as tables show it: its marker and its name."""
    return STATE_LABELS.get(state, state)


TILE_COLUMNS = ["country", "name", "col", "row", "up", "down", "maintenance", "unknown", "total"]


def availability_band(up: int, down: int, total: int, maintenance: int = 0) -> str:
    """The band a country falls in; 'maintenance' when every target without a known state
    is in a maintenance window, 'unknown' when none has a known state."""
    if total == 0:
        return NO_TARGETS_BAND[0]
    known = up + down
    if known == 0:
        return MAINTENANCE_BAND[0] if maintenance == total else UNKNOWN_BAND[0]
    ratio = up / known
    for label, floor, _ in BANDS:
        if ratio >= floor:
            return label
    return BANDS[-1][0]  # pragma: no cover - the last floor is 0.0


def tile_frame(countries: pd.DataFrame, outage_countries: frozenset[str]) -> pd.DataFrame:
    """One row per tile: position, counts, band and labels.

    `countries` has columns country, up, down, maintenance, unknown, total
    (dashboard.queries' country summary). Countries outside the grid are placed in an extra row at the
    bottom, so a new country in targets.toml still shows up.
    """
    counts = countries.set_index("country") if len(countries) else None
    codes = list(TILE_POSITIONS)
    extra = sorted(set(countries["country"]) - set(codes)) if len(countries) else []
    rows = []
    for index, code in enumerate(codes + extra):
        col, row = TILE_POSITIONS.get(code, (index - len(codes), GRID_ROWS))
        up = down = maintenance = unknown = total = 0
        if counts is not None and code in counts.index:
            record = counts.loc[code]
            up, down = int(record["up"]), int(record["down"])
            maintenance = int(record.get("maintenance", 0))
            unknown, total = int(record["unknown"]), int(record["total"])
        band = availability_band(up, down, total, maintenance)
        if total == 0:
            detail = "no targets"
        elif band == MAINTENANCE_BAND[0]:
            detail = "maintenance"
        elif band == UNKNOWN_BAND[0]:
            detail = f"{total} unknown"
        else:
            detail = f"{up}/{total} up" + (f" · {maintenance} maint." if maintenance else "")
        rows.append(
            {
                "country": code,
                "name": country_name(code),
                "col": col,
                "row": row,
                "up": up,
                "down": down,
                "maintenance": maintenance,
                "unknown": unknown,
                "total": total,
                "band": band,
                "detail": detail,
                "outage": code in outage_countries,
            }
        )
    return pd.DataFrame(rows)


def tile_chart(tiles: pd.DataFrame, tile_px: int = 96) -> alt.LayerChart:
    """The tile map: squares coloured by availability band, code and counts written on them."""
    columns = max(GRID_COLUMNS, 1 + int(tiles["col"].max()) if len(tiles) else 0)
    rows = max(GRID_ROWS, 1 + int(tiles["row"].max()) if len(tiles) else 0)
    extra_bands = (MAINTENANCE_BAND, UNKNOWN_BAND, NO_TARGETS_BAND)
    domain = [label for label, _, _ in BANDS] + [label for label, _ in extra_bands]
    palette = [colour for _, _, colour in BANDS] + [colour for _, colour in extra_bands]
    x = alt.X("col:O", axis=None, scale=alt.Scale(domain=list(range(columns)), paddingInner=0.08))
    y = alt.Y("row:O", axis=None, scale=alt.Scale(domain=list(range(rows)), paddingInner=0.08))
    base = alt.Chart(tiles).encode(x=x, y=y)
    squares = base.mark_rect(cornerRadius=6).encode(
        color=alt.Color(
            "band:N",
            scale=alt.Scale(domain=domain, range=palette),
            legend=alt.Legend(title="availability", orient="bottom", labelLimit=160),
        ),
        # A heavy black frame marks a declared outage, beyond the colour.
        stroke=alt.condition("datum.outage", alt.value("#000000"), alt.value("#ffffff")),
        strokeWidth=alt.condition("datum.outage", alt.value(4), alt.value(1)),
        tooltip=[
            alt.Tooltip("name:N", title="country"),
            alt.Tooltip("up:Q"),
            alt.Tooltip("down:Q"),
            alt.Tooltip("maintenance:Q"),
            alt.Tooltip("unknown:Q"),
            alt.Tooltip("total:Q"),
        ],
    )
    codes = base.mark_text(fontSize=tile_px // 4, fontWeight="bold", dy=-tile_px // 9).encode(
        text="country:N", color=alt.value("#111111")
    )
    details = base.mark_text(fontSize=max(10, tile_px // 8), dy=tile_px // 6).encode(
        text="detail:N", color=alt.value("#111111")
    )
    layered: alt.LayerChart = squares + codes + details
    return layered.properties(width=columns * tile_px, height=rows * tile_px)
