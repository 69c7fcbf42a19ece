"""The Prometheus data source: dashboard.queries' frames from the Prometheus HTTP API.

For deployments with several vantages scraped by one Prometheus. Series carry a
`vantage` label there; the dashboard merges vantages the way an operator reads
them: a target is up if any vantage reaches it (a failure seen from only some
vantages is a path problem, not an outage), and the monitor is offline only when
every vantage is.

Metric names and labels: DESIGN.md, plus govwatch_target_state{target,country,sector,
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
from dashboard.queries import (
    DAILY_COLUMNS,
    DETAIL_COLUMNS,
    DOWN,
    INCIDENT_COLUMNS,
    PHASE_COLUMNS,
    SPARKLINE_COLUMNS,
    STATUS_COLUMNS,
    TABLE_COLUMNS,
    UNKNOWN,
    UP,
    UPTIME_COLUMNS,
    UPTIME_WINDOWS,
    PrometheusSource,
    SourceError,
    empty,
    phase_bucket_s,
    utc_day,
)

# Prometheus refuses range queries with more than 11,000 points per series.
MAX_POINTS = 10_000
STATE_PRIORITY = {UP: 0, DOWN: 1, UNKNOWN: 2}


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


# --- current state ------------------------------------------------------------------------


def target_status(source: PrometheusSource) -> pd.DataFrame:
    rows: dict[str, dict[str, Any]] = {}
    for sample in instant(source, "govwatch_target_state == 1"):
        labels = sample.labels
        name = labels.get("target", "")
        state = labels.get("state", UNKNOWN)
        current = rows.get(name)
        if current is None or STATE_PRIORITY.get(state, 3) < STATE_PRIORITY.get(
            current["state"], 3
        ):
            rows[name] = {
                "target": name,
                "country": labels.get("country", "??"),
                "sector": labels.get("sector", ""),
                "url": None,
                "state": state,
                "reason": labels.get("reason") or None,
                "since": pd.NaT,
            }
    if not rows:
        # Older exporters: only the 0/1 gauge.
        for sample in instant(source, "max by (target, country, sector) (govwatch_target_up)"):
            labels = sample.labels
            rows[labels.get("target", "")] = {
                "target": labels.get("target", ""),
                "country": labels.get("country", "??"),
                "sector": labels.get("sector", ""),
                "url": None,
                "state": UP if sample.value >= 1 else DOWN,
                "reason": None,
                "since": pd.NaT,
            }
    if not rows:
        return empty(STATUS_COLUMNS)
    frame = pd.DataFrame(list(rows.values()), columns=STATUS_COLUMNS)
    frame["since"] = pd.to_datetime(frame["since"], utc=True)
    return frame.sort_values(["country", "target"], ignore_index=True)


def _by_target(samples: list[Sample]) -> dict[str, float]:
    return {s.labels.get("target", ""): s.value for s in samples}


def target_table(source: PrometheusSource, now: datetime) -> pd.DataFrame:
    status = target_status(source)
    response = _by_target(
        instant(
            source,
            'min by (target) (probe_duration_seconds{probe="http"} '
            'and on (target, vantage) probe_success{probe="http"} == 1)',
        )
    )
    expiry = _by_target(instant(source, "min by (target) (probe_ssl_earliest_cert_expiry)"))
    signed = _by_target(instant(source, "max by (target) (govwatch_dnssec_signed)"))
    table = status.copy()
    table["response_s"] = table["target"].map(response).astype(float)
    seconds = table["target"].map(expiry).astype(float)
    table["tls_expiry"] = pd.to_datetime(seconds, unit="s", utc=True)
    table["tls_days_left"] = (seconds - now.timestamp()) / 86400.0
    table["dnssec_signed"] = table["target"].map(
        lambda name: None if name not in signed else bool(signed[name])
    )
    return table.reindex(columns=TABLE_COLUMNS)


def vantage_status(source: PrometheusSource) -> VantageFacts:
    samples = instant(source, "timestamp(govwatch_vantage_up)")
    values = instant(source, "govwatch_vantage_up")
    last = max((s.value for s in samples), default=None)
    last_update = None if last is None else datetime.fromtimestamp(last, UTC)
    if not values or any(s.value >= 1 for s in values):
        return VantageFacts(up=True, last_update=last_update)
    return VantageFacts(up=False, last_update=last_update)


# --- incidents ----------------------------------------------------------------------------


def _intervals(series: Series) -> list[tuple[float, float | None]]:
    """(start, end) of each run of 1s; end None for a run that lasts to the last sample."""
    runs: list[tuple[float, float | None]] = []
    start: float | None = None
    for t, v in zip(series.times, series.values, strict=True):
        if v >= 1 and start is None:
            start = t
        elif v < 1 and start is not None:
            runs.append((start, t))
            start = None
    if start is not None:
        runs.append((start, None))
    return runs


def incidents_since(
    source: PrometheusSource, since: datetime, now: datetime | None = None
) -> pd.DataFrame:
    """Country and region outages from govwatch_outage_active, to the query step's precision."""
    now = now or datetime.now(UTC)
    span = (now - since).total_seconds()
    step = max(60.0, span / 1500.0)
    series = range_query(
        source, "max by (scope, country) (govwatch_outage_active)", since, now, step
    )
    status = target_status(source)
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
                    "started_at": pd.Timestamp(start, unit="s", tz=UTC),
                    "ended_at": pd.NaT if is_open else pd.Timestamp(end, unit="s", tz=UTC),
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


def open_incidents(source: PrometheusSource) -> pd.DataFrame:
    now = datetime.now(UTC)
    frame = incidents_since(source, now - timedelta(hours=24), now)
    frame = frame[frame["ended_at"].isna()]
    # Active for the whole day: look further back, coarser, for when it started.
    whole_day = frame["started_at"] <= now - timedelta(hours=23, minutes=55)
    if whole_day.any():
        longer = incidents_since(source, now - timedelta(days=30), now)
        frame = longer[longer["ended_at"].isna()]
    return frame.sort_values("started_at", ignore_index=True)


# --- history ------------------------------------------------------------------------------


def latency_sparklines(source: PrometheusSource, points: int) -> pd.DataFrame:
    now = datetime.now(UTC)
    step = 30.0
    series = range_query(
        source,
        'min by (target) (probe_duration_seconds{probe="http"} '
        'and on (target, vantage) probe_success{probe="http"} == 1) * 1000',
        now - timedelta(seconds=step * points),
        now,
        step,
    )
    rows = [
        {"target": s.labels.get("target", ""), "latency_ms": [round(v, 1) for v in s.values]}
        for s in series
    ]
    return pd.DataFrame(rows, columns=SPARKLINE_COLUMNS)


def target_phases(
    source: PrometheusSource, target: str, since: datetime, now: datetime
) -> pd.DataFrame:
    step = float(phase_bucket_s(now - since))
    series = range_query(
        source,
        f"avg by (phase) (probe_http_duration_seconds{{target={_quote(target)}}})",
        since,
        now,
        step,
    )
    rows = [
        {
            "time": pd.Timestamp(t, unit="s", tz=UTC),
            "phase": s.labels.get("phase", "?"),
            "seconds": v,
        }
        for s in series
        for t, v in zip(s.times, s.values, strict=True)
    ]
    if not rows:
        return empty(PHASE_COLUMNS)
    return pd.DataFrame(rows, columns=PHASE_COLUMNS)


def target_uptime(source: PrometheusSource, target: str) -> pd.DataFrame:
    rows = []
    for label, span in UPTIME_WINDOWS:
        hours = int(span.total_seconds() // 3600)
        samples = instant(
            source,
            f"max(avg_over_time(govwatch_target_up{{target={_quote(target)}}}[{hours}h]))",
        )
        uptime = samples[0].value if samples else np.nan
        rows.append({"window": label, "uptime": uptime, "down_s": np.nan, "known_s": np.nan})
    return pd.DataFrame(rows, columns=UPTIME_COLUMNS)


def target_details(source: PrometheusSource, target: str) -> pd.DataFrame:
    selector = f"{{target={_quote(target)}}}"
    rows: list[tuple[str, str, str]] = []
    for sample in instant(source, f"probe_ssl_earliest_cert_expiry{selector}"):
        moment = datetime.fromtimestamp(sample.value, UTC)
        rows.append(("tls", "earliest expiry", moment.strftime("%Y-%m-%d %H:%M UTC")))
    for sample in instant(source, f"probe_tls_version_info{selector} == 1"):
        rows.append(("tls", "TLS version", sample.labels.get("version", "?")))
    for sample in instant(source, f"govwatch_dnssec_signed{selector}"):
        rows.append(("dns", "DNSSEC", "signed" if sample.value >= 1 else "unsigned"))
    for sample in instant(source, f"probe_http_status_code{selector}"):
        rows.append(("http", "HTTP status", f"{sample.value:.0f}"))
    for sample in instant(source, f"probe_success{selector}"):
        probe = sample.labels.get("probe", "?")
        vantage = sample.labels.get("vantage")
        field = f"result ({vantage})" if vantage else "result"
        rows.append((probe, field, "ok" if sample.value >= 1 else "failed"))
    return pd.DataFrame(rows, columns=DETAIL_COLUMNS)


def daily_availability(source: PrometheusSource, since: datetime, now: datetime) -> pd.DataFrame:
    """Mean of govwatch_country_availability_ratio per UTC day (today: so far)."""
    first_day = utc_day(since)
    series = range_query(
        source,
        "max by (country) (avg_over_time(govwatch_country_availability_ratio[1d]))",
        first_day + timedelta(days=1),
        utc_day(now) + timedelta(days=1),
        86400.0,
    )
    rows = [
        {
            "day": pd.Timestamp(t - 86400.0, unit="s", tz=UTC),
            "country": s.labels.get("country", "??"),
            "availability": v,
        }
        for s in series
        for t, v in zip(s.times, s.values, strict=True)
    ]
    if not rows:
        return empty(DAILY_COLUMNS)
    return pd.DataFrame(rows, columns=DAILY_COLUMNS)
