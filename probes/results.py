"""Typed probe results and the closed failure-reason enum (a contract: README, failure reasons)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probes.dns import DnsDetails
    from probes.http import HttpDetails
    from probes.tls import TlsDetails


class Reason(StrEnum):
    """Why a probe failed. Closed: results, metrics, storage and the UI use only these."""

    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_TIMEOUT = "dns_timeout"
    DNS_ERROR = "dns_error"
    DNSSEC_BOGUS = "dnssec_bogus"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    NETWORK_UNREACHABLE = "network_unreachable"
    TLS_HANDSHAKE = "tls_handshake"
    TLS_CERT_EXPIRED = "tls_cert_expired"
    TLS_CERT_UNTRUSTED = "tls_cert_untrusted"
    TLS_HOSTNAME_MISMATCH = "tls_hostname_mismatch"
    HTTP_TIMEOUT = "http_timeout"
    HTTP_STATUS = "http_status"
    HTTP_CONTENT = "http_content"
    HTTP_TOO_LARGE = "http_too_large"
    HTTP_REDIRECT_LOOP = "http_redirect_loop"
    PROTOCOL_ERROR = "protocol_error"


class ProbeKind(StrEnum):
    HTTP = "http"
    DNS = "dns"
    TLS = "tls"


class LocalFault(StrEnum):
    """A failure that was the monitor's own, not the target's: it says nothing about the target.

    RESOURCES: this machine ran out of something (file descriptors, buffers, memory).
    OVERLOAD: the probe was starved of CPU (the event loop lagged) and ran out of time.
    """

    RESOURCES = "resources"
    OVERLOAD = "overload"


EMPTY_PHASES: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one target. `reason` is None exactly when `ok` is True."""

    kind: ProbeKind
    ok: bool
    reason: Reason | None
    duration_s: float
    started_at: float  # unix epoch seconds
    # Seconds spent per phase, named as blackbox_exporter names them
    # (resolve, connect, tls, processing, transfer for HTTP).
    phases: Mapping[str, float] = field(default_factory=lambda: EMPTY_PHASES)
    details: HttpDetails | DnsDetails | TlsDetails | None = None
    error: str | None = None  # the underlying error, for humans and logs
    local_fault: LocalFault | None = None  # set when the failure was the monitor's own

    def __post_init__(self) -> None:
        if self.ok != (self.reason is None):
            raise ValueError(f"ok={self.ok} contradicts reason={self.reason!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the one serialised form used by the CLI, storage and the API."""
        return {
            "probe": self.kind.value,
            "ok": self.ok,
            "reason": self.reason.value if self.reason else None,
            "duration_s": round(self.duration_s, 6),
            "started_at": self.started_at,
            "phases": {name: round(seconds, 6) for name, seconds in self.phases.items()},
            "details": to_jsonable(self.details) if self.details is not None else {},
            "error": self.error,
            "local_fault": self.local_fault.value if self.local_fault else None,
        }


def to_jsonable(value: Any) -> Any:
    """Frozen dataclasses, enums, tuples, frozensets, bytes and mappings -> JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    return value
