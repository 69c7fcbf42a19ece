"""Row encoding and decoding: what the writer's records and the status rows become in
the history's tables (monitor/storage/schema.py), and the stored rows back as
monitor.state and monitor.outage types. No I/O: values in, values out."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

from monitor.outage import HintKind, Incident, InfraHint, Scope, TargetInfra
from monitor.settings import Canary, Target
from monitor.state import PROBE_PRECEDENCE, ProbeTrack, TargetState, TargetStatus, Transition
from monitor.tamper import (
    BaselineChange,
    Signal,
    SignalChange,
    TamperKind,
    baseline_from_json,
    baseline_to_json,
)
from probes.results import (
    ProbeKind,
    ProbeResult,
    Reason,
    to_jsonable,
)

log = logging.getLogger("monitor.storage")


# --- JSON ---------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """JSON text in the project's one serialised form (probes.results.to_jsonable)."""
    return dumps_plain(to_jsonable(value))


def dumps_plain(value: Any) -> str:
    """JSON text of values already JSON-ready. Non-finite floats are refused: SQLite's
    JSON functions cannot read them."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    target: str
    result: ProbeResult


@dataclass(frozen=True, slots=True)
class TargetsRecord:
    targets: tuple[Target, ...]
    canaries: tuple[Canary, ...]


@dataclass(frozen=True, slots=True)
class AckApplied:
    """The daemon applied acknowledgement `ack_id` (tamper_acks.id)."""

    ack_id: int
    outcome: str  # 'cleared' | 'relearning' | 'unknown target'
    at: float


Record: TypeAlias = (
    ProbeRecord | Transition | Incident | TargetsRecord | SignalChange | BaselineChange | AckApplied
)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One target's (or canary's) current status, for the target_status table."""

    status: TargetStatus  # confirmed state, since, reason, probe tracks: what a restart restores
    reported: TargetState  # the one reported state (for canaries: their confirmed state)
    infra: TargetInfra | None  # what the target runs on, if known

    @property
    def name(self) -> str:
        return self.status.name


# --- rows ----------------------------------------------------------------------------


def probe_row(record: ProbeRecord, vantage: str) -> tuple[Any, ...]:
    r = record.result
    serialised = r.to_dict()
    hot = r.facts  # the columns the dashboard's table needs, so it never parses JSON per row
    details: str | None = None
    if r.details is not None:
        try:
            details = dumps_plain(serialised["details"])
        except (TypeError, ValueError) as exc:
            # The columns still tell the story; losing the whole row would hide it.
            log.error("storage: details of %s/%s not stored: %s", record.target, r.kind, exc)
    return (
        record.target,
        vantage,
        serialised["probe"],
        r.started_at,
        int(r.ok),
        serialised["reason"],
        r.duration_s,
        hot.http_status,
        hot.tls_expiry,
        hot.tls_leaf_expiry,
        hot.tls_version,
        None if hot.dnssec_status is None else hot.dnssec_status.value,
        None if hot.dnssec_signed is None else int(hot.dnssec_signed),
        hot.dnssec_expiry,
        dumps_plain(serialised["phases"]),
        details,
        r.error,
    )


def signal_row(record: SignalChange, now: float) -> tuple[Any, ...]:
    signal = record.signal
    return (
        signal.id,
        signal.target,
        signal.kind.value,
        record.country,
        signal.raised_at,
        record.cleared_at,
        record.cleared_by,
        record.note,
        signal.summary,
        dumps(signal.evidence),
        dumps(baseline_to_json(signal.candidate)),
        now,
    )


def signal_from_row(row: Sequence[Any]) -> Signal:
    """(target, kind, raised_at, summary, evidence, candidate) back as a raised Signal."""
    target, kind, raised_at, summary, evidence, candidate = row
    tamper_kind = TamperKind(kind)
    return Signal(
        target=target,
        kind=tamper_kind,
        raised_at=raised_at,
        summary=summary,
        evidence=json.loads(evidence),
        candidate=baseline_from_json(tamper_kind, json.loads(candidate)),
    )


def incident_row(incident: Incident, now: float) -> tuple[Any, ...]:
    return (
        incident.id,
        incident.scope.value,
        incident.country,
        incident.target,
        incident.started_at,
        incident.ended_at,
        dumps(list(incident.affected)),
        len(incident.affected),
        None if incident.dominant_reason is None else incident.dominant_reason.value,
        dumps(incident.hints) if incident.hints else None,
        incident.hint_text,
        now,
    )


def incident_from_row(row: Sequence[Any]) -> Incident:
    hints = json.loads(row[8]) if row[8] is not None else []
    return Incident(
        id=row[0],
        scope=Scope(row[1]),
        country=row[2],
        target=row[3],
        started_at=row[4],
        ended_at=row[5],
        affected=tuple(json.loads(row[6])),
        dominant_reason=None if row[7] is None else Reason(row[7]),
        hints=tuple(
            InfraHint(HintKind(h["kind"]), tuple(h["values"]), h["count"], h["of"]) for h in hints
        ),
    )


def status_data(status: TargetStatus, infra: TargetInfra | None) -> dict[str, Any]:
    """Everything needed to rebuild `status` (and the target's infra), as JSON values."""
    probes = []
    for track in status.probes.values():
        last = track.last.to_dict()
        del last["details"]  # large, and the state machine never looks at them
        probes.append(
            {
                "last": last,
                "observed_at": track.observed_at,
                "consecutive_failures": track.consecutive_failures,
                "failing_since": track.failing_since,
                "failed_at": track.failed_at,
            }
        )
    data: dict[str, Any] = {"blind": status.blind, "probes": probes}
    if infra is not None:
        data["infra"] = to_jsonable(infra)
    return data


def status_from_row(
    name: str, state: str, since: float | None, reason: str | None, data_text: str
) -> tuple[TargetStatus, TargetInfra | None]:
    data = json.loads(data_text)
    tracks = []
    for probe in data.get("probes", []):
        last = probe["last"]
        result = ProbeResult(
            kind=ProbeKind(last["probe"]),
            ok=last["ok"],
            reason=None if last["reason"] is None else Reason(last["reason"]),
            duration_s=last["duration_s"],
            started_at=last["started_at"],
            phases=MappingProxyType(dict(last["phases"])),
            details=None,
            error=last["error"],
        )
        tracks.append(
            ProbeTrack(
                last=result,
                observed_at=probe["observed_at"],
                consecutive_failures=probe["consecutive_failures"],
                failing_since=probe["failing_since"],
                failed_at=probe.get("failed_at"),  # absent in rows from before it existed
            )
        )
    order = {kind: rank for rank, kind in enumerate(PROBE_PRECEDENCE)}
    tracks.sort(key=lambda t: order.get(t.kind, len(order)))
    status = TargetStatus(
        name=name,
        state=TargetState(state),
        since=since,
        reason=None if reason is None else Reason(reason),
        probes=MappingProxyType({t.kind: t for t in tracks}),
        blind=bool(data.get("blind", False)),
    )
    raw_infra = data.get("infra")
    infra = None
    if raw_infra is not None:
        infra = TargetInfra(
            nameservers=frozenset(raw_infra["nameservers"]),
            address_prefixes=frozenset(raw_infra["address_prefixes"]),
            issuer=raw_infra["issuer"],
        )
    return status, infra
