"""`govwatch report`: the period from --from/--to, the history read once, the report
built and rendered. Exit 0 on success, 2 with one line on stderr for a bad date, an
empty period, an unknown country or an unusable database."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.countries import ISO_ALPHA2

if TYPE_CHECKING:
    import sqlite3

    from monitor.report.history import HistoryRows

DEFAULT_SPAN = timedelta(days=30)
EXIT_OK = 0
EXIT_USAGE = 2


class ReportUsageError(ValueError):
    """A bad --from/--to/--country: its text is the one line shown."""


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """YYYY-MM-DD (midnight UTC; with `end_of_day` the next midnight, so `--to 2026-11-30`
    covers that whole day) or ISO 8601 with or without an offset (UTC when none)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportUsageError(
            f"{text!r} is not a date: give YYYY-MM-DD or ISO 8601, e.g. 2026-11-01T00:00:00+01:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def month_period(month: str, now: datetime) -> tuple[datetime, datetime]:
    """`YYYY-MM`, or `last` (the calendar month before `now`'s, UTC): [its first midnight,
    the next month's first midnight). What a monthly report timer asks for."""
    if month == "last":
        this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
        start = (this_month - timedelta(days=1)).replace(day=1)
    else:
        try:
            parsed = datetime.strptime(month, "%Y-%m")
        except ValueError:
            raise ReportUsageError(
                f"--month {month!r}: give YYYY-MM (e.g. 2026-10) or last"
            ) from None
        start = parsed.replace(tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def resolve_period(
    first: str | None, last: str | None, now: datetime, month: str | None = None
) -> tuple[datetime, datetime]:
    """[from, to]: a --month; by default the 30 days up to now; one bound given, 30 days
    from or to it."""
    if month is not None:
        if first is not None or last is not None:
            raise ReportUsageError("--month replaces --from and --to: give one or the other")
        return month_period(month, now)
    end = now if last is None else parse_moment(last, end_of_day=True)
    start = end - DEFAULT_SPAN if first is None else parse_moment(first)
    if last is None and first is not None and start >= end:
        raise ReportUsageError(f"--from {first} is not before now")
    if start >= end:
        raise ReportUsageError(f"--from {first} is not before --to {last}")
    return start, end


def check_countries(codes: Sequence[str]) -> tuple[str, ...]:
    upper = tuple(sorted({code.upper() for code in codes}))
    unknown = [code for code in upper if code not in ISO_ALPHA2]
    if unknown:
        raise ReportUsageError(
            f"unknown country code {', '.join(unknown)}: give ISO 3166-1 alpha-2, e.g. AL, RS, XK"
        )
    return upper


def rendered(
    rows: HistoryRows,
    start: datetime,
    end: datetime,
    now: datetime,
    format_name: str,
    countries: Sequence[str] = (),
) -> str:
    """The report of [start, end) built from `rows` and rendered in `format_name`."""
    # Imported here: pandas is heavy and only reports need it.
    from monitor.report.model import build_report
    from monitor.report.render import render

    report = build_report(
        rows, start.timestamp(), end.timestamp(), now.timestamp(), tuple(countries)
    )
    return render(report, format_name)


def report_text(
    conn: sqlite3.Connection, start: datetime, end: datetime, now: datetime, format_name: str
) -> str:
    """Every country's report of [start, end) read from `conn`: what the dashboard's
    download button offers (the command checks its countries first, then `rendered`)."""
    from monitor.report.history import read_history

    return rendered(
        read_history(conn, start.timestamp(), end.timestamp()), start, end, now, format_name
    )


def run_report(
    db: Path,
    first: str | None,
    last: str | None,
    countries: Sequence[str],
    format_name: str,
    out: str | None,
    now: datetime | None = None,
    month: str | None = None,
) -> int:
    from monitor.report.history import read_history
    from monitor.storage import StorageError, open_history

    moment = datetime.now(UTC) if now is None else now
    try:
        start, end = resolve_period(first, last, moment, month)
        wanted = check_countries(countries)
    except ReportUsageError as exc:
        print(f"govwatch report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with open_history(db) as conn:
            rows = read_history(conn, start.timestamp(), end.timestamp())
    except StorageError as exc:
        print(f"govwatch report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    monitored = {t.country for t in rows.targets}
    missing = [code for code in wanted if code not in monitored]
    if missing:
        print(
            f"govwatch report: no targets of {', '.join(missing)} in {db} "
            f"(monitored: {', '.join(sorted(monitored)) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    text = rendered(rows, start, end, moment, format_name, wanted)
    if out is None or out == "-":
        sys.stdout.write(text)
    else:
        # `{month}` in the name: one file per month from a timer (govwatch-{month}.html).
        path = Path(out.replace("{month}", start.strftime("%Y-%m")))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"govwatch report: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_OK
