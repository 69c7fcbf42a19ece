"""Maintenance windows in time, table-driven: `now` is always passed in."""

from __future__ import annotations

import math

import pytest

from monitor.maintenance import WEEK_S, active_window, ends_at, next_boundary, occurrence
from monitor.settings import MaintenanceWindow, Target

T0 = 1_796_162_400.0  # 2026-12-01T22:00:00Z, a Tuesday
H = 3600.0

PORTAL = Target(name="e-Albania", url="https://e-albania.al.test/", country="AL", sector="portal")
TAX = Target(name="tax", url="https://tax.rs.test/", country="RS", sector="tax")

ONCE = MaintenanceWindow(note="upgrade", start=T0, end=T0 + 2 * H, targets=frozenset({"e-Albania"}))
WEEKLY = MaintenanceWindow(
    note="backup", start=T0, end=T0 + H, every_s=WEEK_S, countries=frozenset({"RS"})
)
SECTOR = MaintenanceWindow(note="tax", start=T0 + H, end=T0 + 3 * H, sectors=frozenset({"tax"}))


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        (ONCE, T0 - 1, None),
        (ONCE, T0, (T0, T0 + 2 * H)),  # the start is included
        (ONCE, T0 + 2 * H - 0.001, (T0, T0 + 2 * H)),
        (ONCE, T0 + 2 * H, None),  # the end is not
        (ONCE, T0 + WEEK_S, None),  # no recurrence
        (WEEKLY, T0 - 1, None),  # never before its first start
        (WEEKLY, T0 + 0.5 * H, (T0, T0 + H)),
        (WEEKLY, T0 + H, None),
        (WEEKLY, T0 + WEEK_S - 1, None),
        (WEEKLY, T0 + WEEK_S, (T0 + WEEK_S, T0 + WEEK_S + H)),
        (WEEKLY, T0 + 52 * WEEK_S + 0.9 * H, (T0 + 52 * WEEK_S, T0 + 52 * WEEK_S + H)),
        (WEEKLY, T0 + 52 * WEEK_S + H, None),
    ],
)
def test_occurrence(
    window: MaintenanceWindow, now: float, expected: tuple[float, float] | None
) -> None:
    assert occurrence(window, now) == expected
    assert ends_at(window, now) == (expected[1] if expected else None)


@pytest.mark.parametrize(
    ("target", "now", "expected"),
    [
        (PORTAL, T0 - 1, None),
        (PORTAL, T0, ONCE),  # by name
        (PORTAL, T0 + 2 * H, None),
        (TAX, T0, WEEKLY),  # by country
        (TAX, T0 + H, SECTOR),  # the weekly one ended, the sector one began
        (TAX, T0 + 0.5 * H, WEEKLY),  # both cover it: the first in config order
        (TAX, T0 + 3 * H, None),
        (TAX, T0 + 2 * WEEK_S, WEEKLY),
        (PORTAL, T0 + 2 * WEEK_S, None),  # the weekly one is for RS only
    ],
)
def test_active_window(target: Target, now: float, expected: MaintenanceWindow | None) -> None:
    assert active_window((ONCE, WEEKLY, SECTOR), target, now) is expected


@pytest.mark.parametrize(
    ("windows", "now", "expected"),
    [
        ((), T0, math.inf),
        ((ONCE,), T0 - 10, T0),
        ((ONCE,), T0, T0 + 2 * H),
        ((ONCE,), T0 + 2 * H, math.inf),  # over for good
        ((WEEKLY,), T0 + 0.5 * H, T0 + H),
        ((WEEKLY,), T0 + H, T0 + WEEK_S),  # the next occurrence
        ((WEEKLY,), T0 + 3 * WEEK_S + 2 * H, T0 + 4 * WEEK_S),
        ((ONCE, WEEKLY, SECTOR), T0, T0 + H),  # the weekly one ends, the sector one starts
        ((ONCE, WEEKLY, SECTOR), T0 + H, T0 + 2 * H),
        ((ONCE, WEEKLY, SECTOR), T0 + 2 * H, T0 + 3 * H),
        ((ONCE, WEEKLY, SECTOR), T0 + 3 * H, T0 + WEEK_S),
    ],
)
def test_next_boundary(windows: tuple[MaintenanceWindow, ...], now: float, expected: float) -> None:
    assert next_boundary(windows, now) == expected
    assert next_boundary(windows, now) > now
