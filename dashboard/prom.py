"""The Prometheus source (`PrometheusSource`): the dashboard's frames from the Prometheus HTTP API.

For deployments with several vantages scraped by one Prometheus. Series carry a
`vantage` label there; the dashboard merges vantages the way an operator reads
them: a target is up if any vantage reaches it (a failure seen from only some
vantages is a path problem, not an outage), and the monitor is offline only when
every vantage is.

Metric names and labels: the README's Metrics section, plus govwatch_target_state{target,country,sector,
state,reason} (1 for the current state) and govwatch_dnssec_signed.
What Prometheus does not keep (per-probe failure log, incident hints) is empty here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from dashboard.banner import VantageFacts
from dashboard.source import (
    DAILY_COLUMNS,
    DETAIL_COLUMNS,
    DOWN,
    FAILURE_COLUMNS,
    INCIDENT_COLUMNS,
    MAINTENANCE,
    PHASE_COLUMNS,
    SIGNAL_COLUMNS,
    SPARKLINE_COLUMNS,
    STATUS_COLUMNS,
    STRIP_COLUMNS,
    TABLE_COLUMNS,
    TARGET_UPTIME_COLUMNS,
    UNKNOWN,
    UP,
    UPTIME_COLUMNS,
    UPTIME_WINDOWS,
    SourceError,
    empty,
    phase_bucket_s,
    to_time,
    utc_day,
)

# Prometheus refuses range queries with more than 11,000 points per series.
MAX_POINTS = 10_000

# One series per target (and vantage) for its current state.
STATE_QUERY = "govwatch_target_state == 1"
UP_QUERY = "govwatch_target_up"
# Successful HTTP response times, the fastest vantage's.
RESPONSE_QUERY = (
    'min by (target) (probe_duration_seconds{probe="http"} '
    'and on (target, vantage) probe_success{probe="http"} == 1)'
)
EXPIRY_QUERY = "min by (target) (probe_ssl_earliest_cert_expiry)"
DNSSEC_QUERY = "max by (target) (govwatch_dnssec_signed)"
VANTAGE_QUERY = "govwatch_vantage_up"
VANTAGE_SEEN_QUERY = "timestamp(govwatch_vantage_up)"
# The share of seeing vantages that declare each outage, as deploy/prometheus/recording.yml
# computes it (shards of one vantage combined with max); more than half is an outage.
OUTAGE_QUERY = (
    "avg by (scope, country) (max by (vantage, scope, country) ("
    "govwatch_outage_active and on (instance, job) (govwatch_vantage_up == 1)))"
)
OUTAGE_QUORUM = 0.5
DAILY_QUERY = "max by (country) (avg_over_time(govwatch_country_availability_ratio[1d]))"
# Raised tamper signals: one series per target and kind, raised if any vantage raised it
# (each daemon keeps its own baselines). Only that: times, summaries and evidence live in
# each daemon's history.
TAMPER_QUERY = "max by (target, country, kind) (govwatch_tamper_signal == 1)"


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    labels: Mapping[str, str]
    times: tuple[float, ...]
    values: tuple[float, ...]


def _get(source: PrometheusSource, path: str, params: Mapping[str, str]) -> Any:
    url = f"{source.url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=source.timeout_s) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        # Prometheus explains bad queries in a JSON body with status 400/422.
        try:
            body = json.load(exc)
        except ValueError:
            raise SourceError(f"{source.url}: HTTP {exc.code} for {path}") from exc
    except (OSError, ValueError) as exc:
        raise SourceError(f"{source.url}: cannot query Prometheus: {exc}") from exc
    if not isinstance(body, Mapping) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, Mapping) else body
        raise SourceError(f"{source.url}: Prometheus said: {error}")
    return body.get("data", {})


def instant(source: PrometheusSource, query: str, at: datetime | None = None) -> list[Sample]:
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at.timestamp():.3f}"
    data = _get(source, "/api/v1/query", params)
    if data.get("resultType") != "vector":
        raise SourceError(f"{source.url}: expected a vector for {query!r}")
    return [
        Sample(dict(item.get("metric", {})), float(item["value"][1]))
        for item in data.get("result", [])
    ]


def range_query(
    source: PrometheusSource, query: str, start: datetime, end: datetime, step_s: float
) -> list[Series]:
    span = (end - start).total_seconds()
    step_s = max(step_s, span / MAX_POINTS, 1.0)
    params = {
        "query": query,
        "start": f"{start.timestamp():.3f}",
        "end": f"{end.timestamp():.3f}",
        "step": f"{step_s:g}",
    }
    data = _get(source, "/api/v1/query_range", params)
    if data.get("resultType") != "matrix":
        raise SourceError(f"{source.url}: expected a matrix for {query!r}")
    found = []
    for item in data.get("result", []):
        pairs = [(float(t), float(v)) for t, v in item.get("values", [])]
        found.append(
            Series(
                dict(item.get("metric", {})),
                tuple(t for t, _ in pairs),
                tuple(v for _, v in pairs),
            )
        )
    return found


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return json.dumps(value)


def target_selector(target: str) -> str:
    """'{target="e-albania.al"}'"""
    return f"{{target={_quote(target)}}}"


def phases_query(target: str) -> str:
    return f"avg by (phase) (probe_http_duration_seconds{target_selector(target)})"


def uptime_query(target: str, span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    return f"max(avg_over_time(govwatch_target_up{target_selector(target)}[{hours}h]))"


def _by_target(samples: list[Sample]) -> dict[str, float]:
    return {s.labels.get("target", ""): s.value for s in samples}


def _intervals(series: Series) -> list[tuple[float, float | None]]:
    """(start, end) of each run above the quorum; end None for a run to the last sample."""
    runs: list[tuple[float, float | None]] = []
    start: float | None = None
    for t, v in zip(series.times, series.values, strict=True):
        if v > OUTAGE_QUORUM and start is None:
            start = t
        elif v <= OUTAGE_QUORUM and start is not None:
            runs.append((start, t))
            start = None
    if start is not None:
        runs.append((start, None))
    return runs


# --- the Prometheus source -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrometheusSource:
    """A Prometheus server scraping one or more govwatch daemons. A `Source`
    (dashboard.source)."""

    url: str  # e.g. http://127.0.0.1:9090
    timeout_s: float = 5.0

    def caption(self) -> str:
        return f"data: Prometheus at {self.url}"

    def target_status(self) -> pd.DataFrame:
        """Each target's state by majority of the vantages that know it (up or down); unknown
        when none does. The reason is the down voters' most common one."""
        votes: dict[str, list[Mapping[str, str]]] = {}
        for sample in instant(self, STATE_QUERY):
            votes.setdefault(sample.labels.get("target", ""), []).append(sample.labels)
        if not votes:
            # An exporter without govwatch_target_state: the 0/1 gauge, per vantage.
            for sample in instant(self, UP_QUERY):
                labels = dict(sample.labels)
                labels["state"] = UP if sample.value >= 1 else DOWN
                votes.setdefault(labels.get("target", ""), []).append(labels)
        if not votes:
            return empty(STATUS_COLUMNS)
        rows = []
        for name, ballots in votes.items():
            states = Counter(b.get("state", UNKNOWN) for b in ballots)
            known = states[UP] + states[DOWN]
            state = UNKNOWN if known == 0 else DOWN if states[DOWN] * 2 > known else UP
            if state == UNKNOWN and states[MAINTENANCE]:
                state = MAINTENANCE  # no vantage knows more: the window explains the silence
            reasons = Counter(b.get("reason") for b in ballots if b.get("state") == DOWN)
            reasons.pop(None, None)
            reasons.pop("", None)
            first = ballots[0]
            rows.append(
                {
                    "target": name,
                    "country": first.get("country", "??"),
                    "sector": first.get("sector", ""),
                    "url": None,
                    "state": state,
                    "reason": reasons.most_common(1)[0][0] if state == DOWN and reasons else None,
                    "since": pd.NaT,
                }
            )
        frame = pd.DataFrame(rows, columns=STATUS_COLUMNS)
        frame["since"] = pd.to_datetime(frame["since"], utc=True)
        return frame.sort_values(["country", "target"], ignore_index=True)

    def target_table(self, now: datetime) -> pd.DataFrame:
        status = self.target_status()
        response = _by_target(instant(self, RESPONSE_QUERY))
        expiry = _by_target(instant(self, EXPIRY_QUERY))
        signed = _by_target(instant(self, DNSSEC_QUERY))
        table = status.copy()
        table["response_s"] = table["target"].map(response).astype(float)
        seconds = table["target"].map(expiry).astype(float)
        table["tls_expiry"] = pd.to_datetime(seconds, unit="s", utc=True)
        table["tls_days_left"] = (seconds - now.timestamp()) / 86400.0
        table["dnssec_signed"] = table["target"].map(
            lambda name: None if name not in signed else bool(signed[name])
        )
        return table.reindex(columns=TABLE_COLUMNS)

    def vantage_status(self) -> VantageFacts:
        samples = instant(self, VANTAGE_SEEN_QUERY)
        values = instant(self, VANTAGE_QUERY)
        last = max((s.value for s in samples), default=None)
        last_update = None if last is None else datetime.fromtimestamp(last, UTC)
        if not values or any(s.value >= 1 for s in values):
            return VantageFacts(up=True, last_update=last_update)
        return VantageFacts(up=False, last_update=last_update)

    def open_incidents(self) -> pd.DataFrame:
        now = datetime.now(UTC)
        frame = self._incidents_between(now - timedelta(hours=24), now)
        frame = frame[frame["ended_at"].isna()]
        # Active for the whole day: look further back, coarser, for when it started.
        whole_day = frame["started_at"] <= now - timedelta(hours=23, minutes=55)
        if whole_day.any():
            longer = self._incidents_between(now - timedelta(days=30), now)
            frame = longer[longer["ended_at"].isna()]
        return frame.sort_values("started_at", ignore_index=True)

    def incidents_since(self, since: datetime, limit: int = 2000) -> pd.DataFrame:
        """Country and region outages from govwatch_outage_active, to the query step's
        precision (`limit` does not apply: outages are few)."""
        return self._incidents_between(since, datetime.now(UTC))

    def _incidents_between(self, since: datetime, now: datetime) -> pd.DataFrame:
        span = (now - since).total_seconds()
        step = max(60.0, span / 1500.0)
        series = range_query(self, OUTAGE_QUERY, since, now, step)
        status = self.target_status()
        rows = []
        for item in series:
            scope = item.labels.get("scope", "country")
            country = item.labels.get("country") or None
            in_scope = status if scope == "region" else status[status["country"] == country]
            down = in_scope[in_scope["state"] == DOWN]
            reasons = Counter(r for r in down["reason"] if isinstance(r, str))
            for start, end in _intervals(item):
                is_open = end is None or end >= item.times[-1]
                affected = tuple(sorted(down["target"])) if is_open else ()
                rows.append(
                    {
                        "incident_id": f"{scope}:{country or scope}:{int(start)}",
                        "scope": scope,
                        "country": country,
                        "target": None,
                        "started_at": to_time(start),
                        "ended_at": pd.NaT if is_open else to_time(end),
                        "affected_count": len(affected),
                        "affected": affected,
                        "dominant_reason": reasons.most_common(1)[0][0] if reasons else None,
                        "hint": None,
                    }
                )
        if not rows:
            return empty(INCIDENT_COLUMNS)
        frame = pd.DataFrame(rows, columns=INCIDENT_COLUMNS)
        return frame.sort_values("started_at", ascending=False, ignore_index=True)

    def latency_sparklines(self, points: int = 30) -> pd.DataFrame:
        now = datetime.now(UTC)
        step = 30.0
        series = range_query(
            self,
            f"{RESPONSE_QUERY} * 1000",
            now - timedelta(seconds=step * points),
            now,
            step,
        )
        rows = [
            {"target": s.labels.get("target", ""), "latency_ms": [round(v, 1) for v in s.values]}
            for s in series
        ]
        return pd.DataFrame(rows, columns=SPARKLINE_COLUMNS)

    def target_phases(self, target: str, since: datetime, now: datetime) -> pd.DataFrame:
        step = float(phase_bucket_s(now - since))
        series = range_query(self, phases_query(target), since, now, step)
        rows = [
            {
                "time": to_time(t),
                "phase": s.labels.get("phase", "?"),
                "seconds": v,
            }
            for s in series
            for t, v in zip(s.times, s.values, strict=True)
        ]
        if not rows:
            return empty(PHASE_COLUMNS)
        return pd.DataFrame(rows, columns=PHASE_COLUMNS)

    def target_uptime(self, target: str, now: datetime) -> pd.DataFrame:
        rows = []
        for label, span in UPTIME_WINDOWS:
            samples = instant(self, uptime_query(target, span))
            uptime = samples[0].value if samples else np.nan
            rows.append({"window": label, "uptime": uptime, "down_s": np.nan, "known_s": np.nan})
        return pd.DataFrame(rows, columns=UPTIME_COLUMNS)

    def uptime_table(self, now: datetime) -> pd.DataFrame:
        return empty(TARGET_UPTIME_COLUMNS)  # per-target range queries: not for every refresh

    def state_strips(self, now: datetime) -> pd.DataFrame:
        return empty(STRIP_COLUMNS)  # a range query per target: not for every refresh

    def target_failures(self, target: str, limit: int = 50) -> pd.DataFrame:
        return empty(FAILURE_COLUMNS)  # Prometheus keeps no per-probe failure log

    def target_details(self, target: str) -> pd.DataFrame:
        selector = target_selector(target)
        rows: list[tuple[str, str, str]] = []
        for sample in instant(self, f"probe_ssl_earliest_cert_expiry{selector}"):
            moment = datetime.fromtimestamp(sample.value, UTC)
            rows.append(("tls", "earliest expiry", moment.strftime("%Y-%m-%d %H:%M UTC")))
        for sample in instant(self, f"probe_tls_version_info{selector} == 1"):
            rows.append(("tls", "TLS version", sample.labels.get("version", "?")))
        for sample in instant(self, f"govwatch_dnssec_signed{selector}"):
            rows.append(("dns", "DNSSEC", "signed" if sample.value >= 1 else "unsigned"))
        for sample in instant(self, f"probe_http_status_code{selector}"):
            rows.append(("http", "HTTP status", f"{sample.value:.0f}"))
        for sample in instant(self, f"probe_success{selector}"):
            probe = sample.labels.get("probe", "?")
            vantage = sample.labels.get("vantage")
            field = f"result ({vantage})" if vantage else "result"
            rows.append((probe, field, "ok" if sample.value >= 1 else "failed"))
        return pd.DataFrame(rows, columns=DETAIL_COLUMNS)

    def daily_availability(self, since: datetime, now: datetime) -> pd.DataFrame:
        """Mean of govwatch_country_availability_ratio per UTC day (today: so far)."""
        first_day = utc_day(since)
        series = range_query(
            self,
            DAILY_QUERY,
            first_day + timedelta(days=1),
            utc_day(now) + timedelta(days=1),
            86400.0,
        )
        rows = [
            {
                "day": to_time(t - 86400.0),
                "country": s.labels.get("country", "??"),
                "availability": v,
            }
            for s in series
            for t, v in zip(s.times, s.values, strict=True)
        ]
        if not rows:
            return empty(DAILY_COLUMNS)
        return pd.DataFrame(rows, columns=DAILY_COLUMNS)

    def tamper_signals(
        self, target: str | None = None, cleared_since: datetime | None = None
    ) -> pd.DataFrame:
        """What govwatch_tamper_signal says is raised now (target, country, kind); no times,
        summary or evidence, and nothing cleared (Prometheus does not keep them)."""
        rows = [
            {
                "signal_id": f"{s.labels.get('kind', '')}:{s.labels.get('target', '')}",
                "target": s.labels.get("target", ""),
                "country": s.labels.get("country", "??"),
                "kind": s.labels.get("kind", ""),
                "raised_at": pd.NaT,
                "cleared_at": pd.NaT,
                "cleared_by": None,
                "note": None,
                "summary": "",
                "evidence": {},
            }
            for s in instant(self, TAMPER_QUERY)
            if target is None or s.labels.get("target") == target
        ]
        if not rows:
            return empty(SIGNAL_COLUMNS)
        frame = pd.DataFrame(rows, columns=SIGNAL_COLUMNS)
        frame["raised_at"] = pd.to_datetime(frame["raised_at"], utc=True)
        frame["cleared_at"] = pd.to_datetime(frame["cleared_at"], utc=True)
        return frame.sort_values(["target", "kind"], ignore_index=True)
