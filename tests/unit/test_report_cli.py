"""`govwatch report`: the period, the checks and their exit codes, the output, every format
through the real command (monitor.cli.main) over the seeded history."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.report.command import ReportUsageError, parse_moment, resolve_period
from tests.unit.report_history import seed_history

DAY = ["--from", "2026-11-01", "--to", "2026-11-01"]  # --to a day: that whole day


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_history(tmp_path_factory.mktemp("report-cli") / "history.sqlite")


def test_json_on_stdout(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(db), "--format", "json", *DAY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["period"] == {
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-11-02T00:00:00Z",
        "seconds": 86400.0,
    }
    assert data["region"]["availability_percent"] == pytest.approx(100 * 324000 / 331200)
    assert data["blind_seconds"] == 1800.0


@pytest.mark.parametrize("format_name", ["md", "csv", "json", "html"])
def test_every_format_to_a_file(db: Path, tmp_path: Path, format_name: str) -> None:
    out = tmp_path / f"report.{format_name}"
    assert main(["report", "--db", str(db), "--format", format_name, "--out", str(out), *DAY]) == 0
    text = out.read_text(encoding="utf-8")
    assert "rs-portal.test" in text
    if format_name == "csv":
        assert len(list(csv.reader(io.StringIO(text)))) == 1 + 4


def test_markdown_is_the_default_and_dash_is_stdout(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", str(db), "--out", "-", *DAY]) == 0
    assert capsys.readouterr().out.startswith("# govwatch availability report")


def test_repeated_country(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["report", "--db", str(db), "--format", "json", "--country", "rs", "--country", "AL"]
    assert main([*args, *DAY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["countries_filter"] == ["AL", "RS"]
    assert [c["country"] for c in data["countries"]] == ["AL", "RS"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "'yesterday' is not a date"),
        (["--from", "2026-13-01"], "is not a date"),
        (["--from", "2026-11-02", "--to", "2026-11-01"], "is not before --to"),
        (["--country", "ZZ", *DAY], "unknown country code ZZ"),
        (["--country", "BG", *DAY], "no targets of BG in"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["report", "--db", str(db), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1


def test_a_missing_database_exits_2_with_storage_s_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", str(tmp_path / "none.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "no such database" in err and err.count("\n") == 1


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (None, None, (datetime(2026, 10, 30, 12, 0, tzinfo=UTC), NOW)),
        ("2026-11-01", None, (datetime(2026, 11, 1, tzinfo=UTC), NOW)),
        (
            None,
            "2026-11-10",
            (datetime(2026, 10, 12, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)),
        ),
        (
            "2026-11-01T08:00:00+02:00",
            "2026-11-01T12:00",
            (datetime(2026, 11, 1, 6, tzinfo=UTC), datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ),
    ],
)
def test_periods(first: str | None, last: str | None, expected: tuple[datetime, datetime]) -> None:
    assert resolve_period(first, last, NOW) == expected


def test_from_in_the_future_is_refused() -> None:
    with pytest.raises(ReportUsageError, match="not before now"):
        resolve_period("2027-01-01", None, NOW)


def test_a_bare_date_is_utc_midnight() -> None:
    assert parse_moment("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_moment("2026-11-01", end_of_day=True) == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("month", "now", "expected"),
    [
        ("last", datetime(2026, 12, 1, 6, 0, tzinfo=UTC), ("2026-11-01", "2026-12-01")),
        ("last", datetime(2027, 1, 15, tzinfo=UTC), ("2026-12-01", "2027-01-01")),
        ("last", datetime(2026, 3, 31, 23, 59, tzinfo=UTC), ("2026-02-01", "2026-03-01")),
        ("2026-11", datetime(2027, 1, 15, tzinfo=UTC), ("2026-11-01", "2026-12-01")),
        ("2026-12", datetime(2027, 1, 15, tzinfo=UTC), ("2026-12-01", "2027-01-01")),
    ],
)
def test_a_calendar_month(month: str, now: datetime, expected: tuple[str, str]) -> None:
    start, end = resolve_period(None, None, now, month)
    assert (start.date().isoformat(), end.date().isoformat()) == expected
    assert start.tzinfo is UTC and end.tzinfo is UTC


def test_month_is_checked_and_excludes_from_and_to() -> None:
    with pytest.raises(ReportUsageError, match="YYYY-MM"):
        resolve_period(None, None, NOW, "November")
    with pytest.raises(ReportUsageError, match="replaces --from and --to"):
        resolve_period("2026-11-01", None, NOW, "last")


def test_month_in_the_file_name_and_directories_made(db: Path, tmp_path: Path) -> None:
    """What the monthly timer runs: --month last --out reports/govwatch-{month}.html."""
    out = tmp_path / "reports" / "govwatch-{month}.html"
    assert main(["report", "--db", str(db), "--format", "html", "--month", "2026-11",
                 "--out", str(out)]) == 0  # fmt: skip
    written = tmp_path / "reports" / "govwatch-2026-11.html"
    assert "rs-portal.test" in written.read_text(encoding="utf-8")
