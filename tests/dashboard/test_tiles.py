"""The tile map: every monitored country gets one square, placed roughly geographically."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]
import pytest

from dashboard.tiles import (
    GRID_COLUMNS,
    GRID_ROWS,
    TILE_POSITIONS,
    availability_band,
    tile_chart,
    tile_frame,
)
from monitor.countries import REGION_NAMES


def summary(rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"country": c, "up": up, "down": down, "unknown": unknown, "total": up + down + unknown}
            for c, up, down, unknown in rows
        ]
    )


def test_every_region_country_has_its_own_tile() -> None:
    assert set(TILE_POSITIONS) == set(REGION_NAMES)
    assert len(set(TILE_POSITIONS.values())) == len(TILE_POSITIONS)


@pytest.mark.parametrize(
    ("west", "east"), [("SI", "HR"), ("BA", "RS"), ("RS", "BG"), ("AL", "MK"), ("RO", "MD")]
)
def test_neighbours_keep_their_west_east_order(west: str, east: str) -> None:
    assert TILE_POSITIONS[west][0] < TILE_POSITIONS[east][0]


@pytest.mark.parametrize(
    ("north", "south"), [("HR", "BA"), ("RS", "XK"), ("XK", "MK"), ("ME", "AL"), ("MK", "GR")]
)
def test_neighbours_keep_their_north_south_order(north: str, south: str) -> None:
    assert TILE_POSITIONS[north][1] < TILE_POSITIONS[south][1]


@pytest.mark.parametrize(
    ("up", "down", "total", "band"),
    [
        (22, 0, 22, "all up"),
        (20, 1, 22, "≥ 90 % up"),  # the unknown one does not count
        (11, 11, 22, "≥ 50 % up"),
        (1, 21, 22, "< 50 % up"),
        (0, 0, 22, "unknown"),
        (0, 0, 0, "no targets"),
    ],
)
def test_availability_band(up: int, down: int, total: int, band: str) -> None:
    assert availability_band(up, down, total) == band


def test_tile_frame_counts_labels_and_outage_flags() -> None:
    frame = tile_frame(
        summary([("AL", 1, 21, 0), ("RS", 6, 0, 0), ("ME", 0, 0, 5)]), frozenset({"AL"})
    )
    assert len(frame) == len(TILE_POSITIONS)
    rows = frame.set_index("country")
    assert rows.loc["AL", ["up", "down", "total"]].tolist() == [1, 21, 22]
    assert rows.loc["AL", "detail"] == "1/22 up"
    assert rows.loc["AL", "band"] == "< 50 % up"
    assert bool(rows.loc["AL", "outage"]) and not bool(rows.loc["RS", "outage"])
    assert rows.loc["ME", "detail"] == "5 unknown"
    assert rows.loc["GR", "detail"] == "no targets"
    assert rows.loc["AL", "name"] == "Albania"


def test_a_country_outside_the_grid_still_gets_a_tile() -> None:
    frame = tile_frame(summary([("CY", 3, 0, 0)]), frozenset())
    cyprus = frame[frame["country"] == "CY"].iloc[0]
    assert cyprus["row"] == GRID_ROWS
    spec = tile_chart(frame).to_dict()
    assert spec["height"] > GRID_ROWS * 96  # an extra row was made for it


def test_the_chart_is_self_contained_vega_lite() -> None:
    frame = tile_frame(summary([("AL", 1, 21, 0)]), frozenset({"AL"}))
    spec = tile_chart(frame, tile_px=80).to_dict()
    assert spec["width"] == GRID_COLUMNS * 80
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["rect", "text", "text"]
    # Data is inlined: nothing is fetched when the chart renders.
    assert "url" not in str(spec.get("data", {}))
    values = next(iter(spec["datasets"].values()))
    assert {v["country"] for v in values} == set(TILE_POSITIONS)
