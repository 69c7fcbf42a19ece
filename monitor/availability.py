"""Time-weighted availability from the state transitions, shared by every reader of the
history: the dashboard (dashboard/queries.py) and `govwatch report` (monitor.report).

Pure: frames and intervals in, frames out; no SQL, no clock. Times are epoch seconds.

A target's state is the one reported state (transitions.new_state): 'up', 'down',
'unknown' (a failure awaiting the canaries, or the monitor blind) or 'maintenance'.
Availability is up / (up + down): unknown and maintenance time count as neither, and
neither does any time covered by a 'vantage' incident (the monitor itself was blind),
whatever the transitions say about it. With no known time, availability is undefined
("no data"), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

UP, DOWN, UNKNOWN, MAINTENANCE = "up", "down", "unknown", "maintenance"
SEGMENT_COLUMNS = ["target", "state", "begin", "end"]


def state_segments(
    status: pd.DataFrame, transitions: pd.DataFrame, start: float, end: float
) -> pd.DataFrame:
    """Who was in which state when: rows (target, state, begin, end) in epoch seconds.

    `status` has target, state, since (epoch); `transitions` has target, old_state,
    new_state, at (epoch), all within [start, end]. Before a target's first transition
    in the window it was in that transition's old state; a target without transitions
    has been in its current state since `since` (unknown before, e.g. a new target).
    """
    parts = []
    if not transitions.empty:
        ordered = transitions.sort_values(["target", "at"], kind="stable")
        following = ordered.groupby("target")["at"].shift(-1).fillna(end)
        parts.append(
            pd.DataFrame(
                {
                    "target": ordered["target"].to_numpy(),
                    "state": ordered["new_state"].to_numpy(),
                    "begin": ordered["at"].to_numpy(dtype=float),
                    "end": following.to_numpy(dtype=float),
                }
            )
        )
        first = ordered.groupby("target", sort=False).first().reset_index()
        parts.append(
            pd.DataFrame(
                {
                    "target": first["target"],
                    "state": first["old_state"],
                    "begin": start,
                    "end": first["at"].astype(float),
                }
            )
        )
        quiet = status[~status["target"].isin(first["target"])]
    else:
        quiet = status
    if not quiet.empty:
        since = pd.to_numeric(quiet["since"], errors="coerce").fillna(start)
        parts.append(
            pd.DataFrame(
                {
                    "target": quiet["target"].to_numpy(),
                    "state": quiet["state"].to_numpy(),
                    "begin": np.maximum(since.to_numpy(dtype=float), start),
                    "end": end,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    segments = pd.concat(parts, ignore_index=True)
    return segments[segments["end"] > segments["begin"]].reset_index(drop=True)


def merged_intervals(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, disjoint intervals covering the same time (empty ones dropped)."""
    merged: list[tuple[float, float]] = []
    for begin, end in sorted((b, e) for b, e in intervals if e > b):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def without_blind(segments: pd.DataFrame, blind: Sequence[tuple[float, float]]) -> pd.DataFrame:
    """The parts of `segments` (target, state, begin, end) outside every `blind` interval
    (begin, end): while the monitor was blind nothing it recorded counts, up or down.

    O(segments + pieces): each segment is cut only by the blind intervals it overlaps.
    """
    gaps = merged_intervals(blind)
    if segments.empty or not gaps:
        return segments
    # The seen intervals between the blind ones, sorted and disjoint.
    seen_begin = np.array([-np.inf] + [end for _, end in gaps])
    seen_end = np.array([begin for begin, _ in gaps] + [np.inf])
    begin = segments["begin"].to_numpy(dtype=float)
    end = segments["end"].to_numpy(dtype=float)
    first = np.searchsorted(seen_end, begin, side="right")  # first seen one ending after begin
    after = np.searchsorted(seen_begin, end, side="left")  # seen ones starting before end
    counts = np.maximum(after - first, 0)
    rows = np.repeat(np.arange(len(segments)), counts)
    nth = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    seen = np.repeat(first, counts) + nth
    pieces = segments.iloc[rows].reset_index(drop=True)
    pieces["begin"] = np.maximum(begin[rows], seen_begin[seen])
    pieces["end"] = np.minimum(end[rows], seen_end[seen])
    return pieces[pieces["end"] > pieces["begin"]].reset_index(drop=True)
