"""The probe registry: every probe kind and its entry point.

`PROBES` is the one registry (as in blackbox_exporter's prober map): every
probe kind maps to an entry point `async (ProbeTarget, ProbeContext) -> ProbeResult`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeAlias

from probes.dns import probe_dns
from probes.http import probe_http
from probes.results import ProbeKind, ProbeResult
from probes.tls import probe_tls

if TYPE_CHECKING:
    from probes.context import ProbeContext
    from probes.settings import ProbeTarget

ProbeFunction: TypeAlias = "Callable[[ProbeTarget, ProbeContext], Awaitable[ProbeResult]]"

PROBES: Mapping[ProbeKind, ProbeFunction] = MappingProxyType(
    {
        ProbeKind.HTTP: probe_http,
        ProbeKind.DNS: probe_dns,
        ProbeKind.TLS: probe_tls,
    }
)
