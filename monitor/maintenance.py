"""Maintenance windows in time: which one covers a target now, and when that can change.

Pure: `now` (unix seconds) is always an argument. A window is active from its start
(included) to its end (excluded); a weekly one again every `every_s` after its start.
The core checks `next_boundary` on each tick, so finding the windows that started or
ended costs O(windows) once per boundary and nothing in between.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from monitor.settings import MaintenanceWindow, Target

WEEK_S: Final = 7 * 86400.0


def occurrence(window: MaintenanceWindow, now: float) -> tuple[float, float] | None:
    """(start, end) of the occurrence of `window` active at `now`, or None."""
    if now < window.start:
        return None
    if window.every_s is None:
        return (window.start, window.end) if now < window.end else None
    cycles = math.floor((now - window.start) / window.every_s)
    start = window.start + cycles * window.every_s
    end = start + (window.end - window.start)
    return (start, end) if now < end else None


def is_active(window: MaintenanceWindow, now: float) -> bool:
    return occurrence(window, now) is not None


def active_window(
    windows: Iterable[MaintenanceWindow], target: Target, now: float
) -> MaintenanceWindow | None:
    """The first window (in config order) that covers `target` and is active at `now`."""
    for window in windows:
        if window.covers(target) and is_active(window, now):
            return window
    return None


def ends_at(window: MaintenanceWindow, now: float) -> float | None:
    """When the occurrence of `window` active at `now` ends; None if none is active."""
    current = occurrence(window, now)
    return current[1] if current is not None else None


def _next_change(window: MaintenanceWindow, now: float) -> float:
    if now < window.start:
        return window.start
    if window.every_s is None:
        return window.end if now < window.end else math.inf
    cycles = math.floor((now - window.start) / window.every_s)
    start = window.start + cycles * window.every_s
    end = start + (window.end - window.start)
    return end if now < end else start + window.every_s


def next_boundary(windows: Iterable[MaintenanceWindow], now: float) -> float:
    """The first time after `now` when any window starts or ends (inf: never again)."""
    return min((_next_change(w, now) for w in windows), default=math.inf)
