"""A seeded history with known outages, for the report's tests (test_report*.py).

One UTC day, 2026-11-01, two countries, four targets:

- al-portal.test (AL, government): down 02:00-03:00 (one target incident, 'connect_timeout');
- al-tax.test (AL, finance): in a maintenance window 18:00-20:00;
- rs-portal.test (RS, government) and rs-health.test (RS, health): down 10:00-10:30
  together, a country outage with a shared-infrastructure hint (and a target incident each);
- 14:00-14:30 the monitor is blind: every target 'unknown' and a 'vantage' incident.

Around it, rows a report must leave out: a transition, an incident, a TLS probe and a
tamper signal after the day, an incident and a tamper signal that ended before it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from monitor.storage import connect_writer

DAY_START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DAY_END = DAY_START + 86400.0
HOUR = 3600.0

TARGETS = (
    ("al-portal.test", "AL", "government"),
    ("al-tax.test", "AL", "finance"),
    ("rs-portal.test", "RS", "government"),
    ("rs-health.test", "RS", "health"),
)
HINT = "all 2 use name servers ns1.shared-dns.test"


def at(hours: float) -> float:
    return DAY_START + hours * HOUR


def seed_history(path: Path) -> Path:
    """The seeded history at `path` (created, migrated by the writer's own code)."""
    conn = connect_writer(path)
    try:
        _seed(conn)
    finally:
        conn.close()
    return path


def _seed(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('vantage', 'tirana-1')")
    for name, country, sector in TARGETS:
        conn.execute(
            "INSERT INTO targets (name, kind, country, sector, url, evidence, active, updated_at) "
            "VALUES (?, 'target', ?, ?, ?, 'seen', 1, ?)",
            (name, country, sector, f"https://{name}/", DAY_START),
        )
        state, since = "up", at(-1)
        if name == "al-portal.test":  # down again after the day: the report must not see it
            state, since = "down", DAY_END + 600
        conn.execute(
            "INSERT INTO target_status (target, kind, state, since, country, sector, updated_at) "
            "VALUES (?, 'target', ?, ?, ?, ?, ?)",
            (name, state, since, country, sector, DAY_END + 600),
        )
        transition(conn, name, "unknown", "up", at(-1))  # first seen the hour before
        # The blind spell: every target unknown.
        transition(conn, name, "up", "unknown", at(14))
        transition(conn, name, "unknown", "up", at(14.5))
    # The canary: not a target, never in a report.
    conn.execute(
        "INSERT INTO targets (name, kind, url, active, updated_at) "
        "VALUES ('canary.test', 'canary', 'https://canary.test/', 1, ?)",
        (DAY_START,),
    )
    transition(conn, "al-portal.test", "up", "down", at(2), "connect_timeout")
    transition(conn, "al-portal.test", "down", "up", at(3))
    transition(conn, "al-portal.test", "up", "down", DAY_END + 600, "connect_refused")
    for name in ("rs-portal.test", "rs-health.test"):
        transition(conn, name, "up", "down", at(10), "dns_servfail")
        transition(conn, name, "down", "up", at(10.5))
    transition(conn, "al-tax.test", "up", "maintenance", at(18))
    transition(conn, "al-tax.test", "maintenance", "up", at(20))

    incident(conn, "target", "AL", "al-portal.test", at(2), at(3), "connect_timeout")
    incident(conn, "target", "AL", "al-portal.test", at(-30), at(-29), "connect_timeout")  # before
    incident(conn, "target", "AL", "al-portal.test", DAY_END + 600, None, "connect_refused")
    for name in ("rs-portal.test", "rs-health.test"):
        incident(conn, "target", "RS", name, at(10), at(10.5), "dns_servfail")
    incident(
        conn,
        "country",
        "RS",
        None,
        at(10),
        at(10.5),
        "dns_servfail",
        affected=["rs-health.test", "rs-portal.test"],
        hint_text=HINT,
    )
    incident(conn, "vantage", None, None, at(14), at(14.5), None, affected=["canary.test"])

    # Posture: the newest TLS and DNS rows at or before the day's end.
    probe(
        conn,
        "al-portal.test",
        "tls",
        at(23),
        True,
        tls=(DAY_END + 90 * 86400, DAY_END + 30 * 86400, "TLSv1.3"),
    )
    probe(
        conn, "al-portal.test", "tls", DAY_END + 60, True, tls=(DAY_END, DAY_END, "TLSv1.2")
    )  # after
    probe(
        conn,
        "al-tax.test",
        "tls",
        at(23),
        True,
        tls=(DAY_END + 10 * 86400, DAY_END + 10 * 86400, "TLSv1.2"),
    )
    probe(
        conn,
        "rs-portal.test",
        "tls",
        at(23),
        False,
        reason="tls_cert_expired",
        tls=(DAY_END - 86400, DAY_END - 86400, "TLSv1.3"),
    )
    probe(conn, "al-portal.test", "dns", at(23), True, dnssec=("secure", 1))
    probe(conn, "al-tax.test", "dns", at(23), True, dnssec=("insecure", 0))
    probe(conn, "rs-portal.test", "dns", at(23), False, reason="dnssec_bogus", dnssec=("bogus", 1))
    probe(conn, "rs-health.test", "dns", at(23), True, dnssec=("secure", 1))

    signal(conn, "defacement:rs-portal.test:1", "rs-portal.test", "RS", at(5), at(6), "ack")
    signal(conn, "dns_change:al-tax.test:1", "al-tax.test", "AL", at(-30), at(-29), "ack")  # before
    signal(
        conn, "cert_change:al-tax.test:2", "al-tax.test", "AL", DAY_END + 60, None, None
    )  # after
    conn.execute("COMMIT")


def transition(
    conn: sqlite3.Connection,
    target: str,
    old: str,
    new: str,
    when: float,
    reason: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO transitions (target, old_state, new_state, at, reason) VALUES (?, ?, ?, ?, ?)",
        (target, old, new, when, reason),
    )


def incident(
    conn: sqlite3.Connection,
    scope: str,
    country: str | None,
    target: str | None,
    started: float,
    ended: float | None,
    reason: str | None,
    *,
    affected: list[str] | None = None,
    hint_text: str | None = None,
) -> None:
    names = affected if affected is not None else [target]
    key = target or country or scope
    conn.execute(
        "INSERT INTO incidents (id, scope, country, target, started_at, ended_at, affected, "
        "affected_count, dominant_reason, hint, hint_text, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            f"{scope}:{key}:{int(started)}",
            scope,
            country,
            target,
            started,
            ended,
            json.dumps(names),
            len(names),
            reason,
            None
            if hint_text is None
            else json.dumps(
                [{"kind": "nameservers", "values": ["ns1.shared-dns.test"], "count": 2, "of": 2}]
            ),
            hint_text,
            started,
        ),
    )


def probe(
    conn: sqlite3.Connection,
    target: str,
    kind: str,
    when: float,
    ok: bool,
    *,
    reason: str | None = None,
    tls: tuple[float, float, str] | None = None,
    dnssec: tuple[str, int] | None = None,
) -> None:
    chain_expiry, leaf_expiry, version = tls if tls is not None else (None, None, None)
    status, signed = dnssec if dnssec is not None else (None, None)
    conn.execute(
        "INSERT INTO probe_results (target, vantage, probe, started_at, ok, reason, duration_s, "
        "tls_expiry, tls_leaf_expiry, tls_version, dnssec_status, dnssec_signed) "
        "VALUES (?, 'tirana-1', ?, ?, ?, ?, 0.1, ?, ?, ?, ?, ?)",
        (target, kind, when, int(ok), reason, chain_expiry, leaf_expiry, version, status, signed),
    )


def signal(
    conn: sqlite3.Connection,
    signal_id: str,
    target: str,
    country: str,
    raised: float,
    cleared: float | None,
    cleared_by: str | None,
) -> None:
    conn.execute(
        "INSERT INTO tamper_signals (id, target, kind, country, raised_at, cleared_at, "
        "cleared_by, summary, evidence, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', ?)",
        (
            signal_id,
            target,
            signal_id.split(":")[0],
            country,
            raised,
            cleared,
            cleared_by,
            f"{signal_id.split(':')[0]} on {target}",
            raised,
        ),
    )
