"""Tamper signals on the dashboard, run by AppTest on a seeded history (seed.build_tamper):
the overview's orange count and list, the evidence per kind on the target page, the
Acknowledge button queueing a tamper_acks row (and reporting the daemon's outcome), the
Prometheus source's raised-only view, and hostile strings in every field shown as text."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import prom, queries, tamper, ui
from dashboard.banner import APP_NAME
from dashboard.prom import PrometheusSource
from monitor.tamper import TamperKind
from tests.dashboard.conftest import Seeded
from tests.dashboard.fake_prometheus import FakePrometheus, FakeSeries, constant, serve
from tests.dashboard.markup import shown
from tests.dashboard.seed import (
    ACK_NOTE,
    CERT_TARGET,
    DEFACED_TARGET,
    SUMMARIES,
    UNTOUCHED_TARGET,
    ZONE_TARGET,
    hostile_markup,
    seed_tamper,
)
from tests.dashboard.test_app import APP, run_app

TARGET_PAGE = "views/target.py"
# Bold as the page writes it: "**label:** text" for evidence, "**title** — raised …" for a
# signal; inside the bold, any character but an unescaped star.
EVIDENCE_LINE = re.compile(r"\*\*(?P<label>(?:\\.|[^*\\])+):\*\* (?P<text>.*)", re.S)
SIGNAL_TITLE = re.compile(r"\*\*(?P<title>(?:\\.|[^*\\])+)\*\*(?P<raised>.*)", re.S)
MARKUP = hostile_markup("http://127.0.0.1:9")
RAW_FRAGMENTS = [
    re.compile(r"(?<!\\)" + re.escape(fragment))
    for fragment in ("127.0.0.1", "<img", ":red[", ":material/home:", ":smile:", "$x$", "*em*")
]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Read-only tests share one history; the Acknowledge tests write their own."""
    path = tmp_path_factory.mktemp("tamper") / "tamper.sqlite3"
    now = time.time()
    return Seeded(path, seed_tamper(path, now), now)


def evidence(app: AppTest) -> dict[str, str]:
    """The page's evidence lines, label -> text as shown (escapes undone, and checked)."""
    lines = {}
    for element in app.markdown:
        found = EVIDENCE_LINE.fullmatch(element.value)
        if found:
            lines[shown(found["label"])] = shown(found["text"])
    return lines


def page_links(app: AppTest) -> list[tuple[str, str]]:
    """(label as shown, query string) of every page link."""
    return [(shown(link.proto.label), link.proto.query_string) for link in app.get("page_link")]


def tamper_count(app: AppTest) -> list[str]:
    return [m.value for m in app.markdown if "Tamper signals:" in m.value]


# --- the overview -------------------------------------------------------------------------


def test_the_overview_counts_raised_signals_apart_from_outages(history: Seeded) -> None:
    app = run_app(history.source)
    (count,) = tamper_count(app)
    assert (
        count == f"{ui.TAMPER_ICON} Tamper signals: 4 — up, but no longer looking like themselves"
    )
    assert not app.error  # not an outage: every target is up
    assert {m.label: m.value for m in app.metric}["Services up"] == "4 / 4"
    (healthy,) = app.success  # the region's banner says all is up: a changed site is up
    assert "tamper" not in healthy.value.lower()
    # Each raised signal, newest first, linking to its target's page.
    links = page_links(app)
    assert [query for _, query in links] == [
        "target=" + urllib.parse.quote_plus(name)
        for name in (DEFACED_TARGET, CERT_TARGET, ZONE_TARGET, ZONE_TARGET)
    ]
    label = links[0][0]
    assert label.startswith(f"AL · {DEFACED_TARGET} · defacement · raised ")
    assert label.endswith(" — " + SUMMARIES[TamperKind.DEFACEMENT])
    assert [label.split(" · ")[2] for label, _ in links] == [
        "defacement",
        "cert_change",
        "dns_change",
        "dnssec_downgrade",
    ]


def test_the_tab_title_names_signals_but_never_as_an_outage() -> None:
    assert ui.with_tamper(APP_NAME, 0) == APP_NAME
    assert ui.with_tamper(APP_NAME, 3) == f"TAMPER SIGNALS: 3 — {APP_NAME}"
    assert "OUTAGE" not in ui.with_tamper(APP_NAME, 3)
    # A louder title (an outage, the monitor offline) stays as it is.
    assert ui.with_tamper(f"OUTAGE: Albania — {APP_NAME}", 3) == f"OUTAGE: Albania — {APP_NAME}"


def test_no_signal_is_a_quiet_zero(tmp_path: Path) -> None:
    path = tmp_path / "quiet.sqlite3"
    seed = seed_tamper(path, time.time())
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM tamper_signals")
    del seed
    app = run_app(queries.SqliteSource(str(path)))
    assert not tamper_count(app)
    assert "Tamper signals: 0" in [c.value for c in app.caption]
    assert not app.get("page_link")


def test_wall_mode_shows_the_count_without_the_list(history: Seeded) -> None:
    app = run_app(history.source, "views/overview.py", {"wall": "1"})
    assert len(tamper_count(app)) == 1
    assert not app.get("page_link")


# --- the target page ----------------------------------------------------------------------


def test_a_defacement_shows_old_against_new(history: Seeded) -> None:
    app = run_app(history.source, TARGET_PAGE, {"target": DEFACED_TARGET})
    assert app.subheader[0].value == f"{ui.TAMPER_ICON} Tamper signals: 1 raised"
    lines = evidence(app)
    assert lines["title"] == "“e-Albania | Portali qeveritar” → “HACKED BY GHOST”"
    assert lines["text similarity"] == "3% like the baseline (fires below 30%)"
    assert lines["text length"] == "5210 → 48 characters"
    assert lines["defacement phrases"] == "hacked by, greetz"
    assert lines["scripts from new hosts"] == "evil.example"
    assert lines["links to new hosts"] == "mirror.example"
    assert lines["content check"] == "passed → failed"
    assert lines["text before"] == "Mirë se vini në portalin e shërbimeve qeveritare"
    assert lines["text now"] == "Hacked by Ghost. Greetz to all the crew"
    assert lines["page"] == f"https://{DEFACED_TARGET}/ (HTTP 200)"
    # Cleared in the last 30 days: the acknowledged dns_change with its note; not the
    # cert_change cleared 40 days ago.
    cleared = next(df.value for df in app.dataframe if "cleared_by" in df.value.columns)
    assert list(cleared["kind"]) == ["dns_change"]
    assert list(cleared["note"]) == [ACK_NOTE] and list(cleared["cleared_by"]) == ["ack"]
    assert [b.label for b in app.button] == ["Acknowledge"]


def test_a_zone_shows_name_servers_networks_serials_and_dnssec(history: Seeded) -> None:
    app = run_app(history.source, TARGET_PAGE, {"target": ZONE_TARGET})
    lines = evidence(app)
    assert lines["name servers"] == (
        "ns11.akshi.gov.al, ns12.akshi.gov.al → ns1.parked.example, ns2.parked.example"
    )
    assert lines["networks never seen before"] == "203.0.113.0/24"
    assert lines["networks known"] == "192.0.2.0/24"
    assert lines["SOA serials"] == (
        "192.0.2.53 2026112801, 198.51.100.53 2026112901 (disagreeing for 3 probes)"
    )
    assert lines["DNSSEC"] == "secure → insecure"
    assert lines["signed"] == "no"
    titles = [
        shown(found["title"])
        for m in app.markdown
        if not EVIDENCE_LINE.fullmatch(m.value)
        and (found := SIGNAL_TITLE.fullmatch(m.value)) is not None
    ]
    assert tamper.kind_title("dns_change") in titles
    assert tamper.kind_title("dnssec_downgrade") in titles
    assert [b.label for b in app.button] == ["Acknowledge", "Acknowledge"]


def test_a_certificate_change_shows_issuers_days_left_and_the_key(history: Seeded) -> None:
    app = run_app(history.source, TARGET_PAGE, {"target": CERT_TARGET})
    lines = evidence(app)
    assert lines["issuer"] == "Let's Encrypt → Shady CA"
    assert lines["old certificate"] == (
        "expires 15 Jan 2027, 62 days left (renewals come in the last 30)"
    )
    assert lines["public key"] == "new key 60303ae22b998861 (was 9f86d081884c7d65)"
    assert lines["new certificate"] == f"CN={CERT_TARGET}, expires 28 Dec 2027"


def test_a_target_without_signals_says_so(history: Seeded) -> None:
    app = run_app(history.source, TARGET_PAGE, {"target": UNTOUCHED_TARGET})
    assert "No tamper signal raised." in [c.value for c in app.caption]
    assert not app.button and not evidence(app)


# --- Acknowledge --------------------------------------------------------------------------


def acks(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT target, kind, note, requested_by, applied_at FROM tamper_acks"
        ).fetchall()


@pytest.fixture
def writable(tmp_path: Path) -> Seeded:
    path = tmp_path / "ack.sqlite3"
    now = time.time()
    return Seeded(path, seed_tamper(path, now), now)


@pytest.fixture
def daemon(writable: Seeded) -> Iterator[None]:
    """Stands in for the daemon's acknowledgement poll: applies each queued row as cleared."""
    stop = threading.Event()

    def apply() -> None:
        while not stop.wait(0.1):
            with sqlite3.connect(writable.path) as conn:
                conn.execute(
                    "UPDATE tamper_acks SET applied_at = ?, outcome = 'cleared' "
                    "WHERE applied_at IS NULL",
                    (time.time(),),
                )

    thread = threading.Thread(target=apply, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def acknowledge(app: AppTest, note: str) -> AppTest:
    app.text_input(key="ack_defacement_note").input(note)
    (button,) = [b for b in app.button if b.label == "Acknowledge"]
    button.click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_acknowledge_queues_the_ack_and_reports_the_daemons_outcome(
    writable: Seeded, daemon: None
) -> None:
    app = run_app(writable.source, TARGET_PAGE, {"target": DEFACED_TARGET})
    acknowledge(app, "ticket 4712: the new portal went live")
    ((target, kind, note, by, applied_at),) = acks(writable.path)
    assert (target, kind, note, by) == (
        DEFACED_TARGET,
        "defacement",
        "ticket 4712: the new portal went live",
        "dashboard",
    )
    assert applied_at is not None
    assert any(
        shown(s.value).startswith("Acknowledgement #1 applied: the signal is cleared")
        for s in app.success
        if "Acknowledgement" in s.value
    )


def test_acknowledge_says_queued_when_the_daemon_does_not_answer(
    writable: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tamper, "ACK_WAIT_S", 0.3)
    app = run_app(writable.source, TARGET_PAGE, {"target": DEFACED_TARGET})
    acknowledge(app, "")
    ((_, kind, note, by, applied_at),) = acks(writable.path)
    assert (kind, note, by, applied_at) == ("defacement", None, "dashboard", None)
    assert any(
        shown(i.value).startswith("Acknowledgement #1 queued: the daemon applies it")
        for i in app.info
    )


# --- Prometheus ---------------------------------------------------------------------------


def test_with_prometheus_the_metric_is_shown_without_evidence_or_button(history: Seeded) -> None:
    series = {
        prom.STATE_QUERY: [
            FakeSeries(
                {"target": name, "country": cc, "sector": "portal", "state": "up", "reason": ""},
                constant(1.0),
            )
            for name, cc in ((DEFACED_TARGET, "AL"), (CERT_TARGET, "ME"))
        ],
        prom.VANTAGE_QUERY: [FakeSeries({"vantage": "a"}, constant(1.0))],
        prom.VANTAGE_SEEN_QUERY: [FakeSeries({"vantage": "a"}, constant(time.time()))],
        prom.OUTAGE_QUERY: [],
        prom.DAILY_QUERY: [],
        prom.TAMPER_QUERY: [
            FakeSeries(
                {"target": DEFACED_TARGET, "country": "AL", "kind": "defacement"}, constant(1)
            ),
            FakeSeries(
                {"target": CERT_TARGET, "country": "ME", "kind": "cert_change"}, constant(1)
            ),
        ],
    }
    with serve(FakePrometheus(series)) as fake:
        source = PrometheusSource(fake.url)
        (count,) = tamper_count(run_app(source))
        assert "Tamper signals: 2" in count
        assert [label for label, _ in page_links(run_app(source))] == [
            f"AL · {DEFACED_TARGET} · defacement",  # by target: no time is known
            f"ME · {CERT_TARGET} · cert_change",
        ]
        mine = source.tamper_signals(DEFACED_TARGET)
        assert list(mine["kind"]) == ["defacement"] and mine["raised_at"].isna().all()
        assert list(mine["evidence"]) == [{}]


@dataclass(frozen=True)
class MetricsOnlySignals:
    """The tamper history as a metrics source sees it (what PrometheusSource.tamper_signals
    returns: raised ones, no time, summary or evidence), everything else from SQLite; not a
    SqliteSource, so the page has no history to queue an acknowledgement in."""

    history: queries.SqliteSource

    def __getattr__(self, name: str) -> Any:
        return getattr(self.history, name)

    def tamper_signals(
        self, target: str | None = None, cleared_since: datetime | None = None
    ) -> pd.DataFrame:
        raised = self.history.tamper_signals(target)
        return raised.assign(
            raised_at=pd.NaT, summary="", note=None, evidence=[{} for _ in range(len(raised))]
        )


def test_a_target_page_without_the_history_shows_the_signal_without_evidence_or_button(
    history: Seeded,
) -> None:
    source = MetricsOnlySignals(history.source)
    app = run_app(source, TARGET_PAGE, {"target": ZONE_TARGET})
    assert app.subheader[0].value == f"{ui.TAMPER_ICON} Tamper signals: 2 raised"
    assert any("Prometheus says only that these are raised" in c.value for c in app.caption)
    assert not evidence(app) and not app.button


@pytest.mark.parametrize("page", [None, TARGET_PAGE])
def test_no_tamper_cell_shows_a_raw_none_or_nan(history: Seeded, page: str | None) -> None:
    app = run_app(history.source, page, {"target": DEFACED_TARGET} if page else None)
    for table in app.dataframe:
        assert table.proto.placeholder == ui.MISSING
        words = {str(v) for v in table.value.to_numpy().ravel() if isinstance(v, str)}
        assert not words & {"None", "nan", "NaN", "NaT", "none"}


def test_a_read_only_dashboard_has_no_acknowledge_button(history: Seeded) -> None:
    assert ui.parse_options(["--db", "x.sqlite3", "--read-only"]).read_only
    assert not ui.parse_options(["--db", "x.sqlite3"]).read_only
    app = AppTest.from_file(APP, default_timeout=30)
    app.session_state[ui.OPTIONS_KEY] = ui.DashboardOptions(history.source, read_only=True)
    app.run()
    app.query_params["target"] = DEFACED_TARGET
    app.switch_page(TARGET_PAGE).run()
    assert not app.exception
    assert evidence(app)["title"] == "“e-Albania | Portali qeveritar” → “HACKED BY GHOST”"
    assert not app.button
    assert any("This dashboard is read-only" in c.value for c in app.caption)
