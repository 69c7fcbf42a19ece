"""The resolver down (nothing listening, or its host unreachable): every probe of a named
target fails with a DNS reason within its budget, never blaming the target's network."""

from __future__ import annotations

import socket
import time

import pytest

from probes.registry import PROBES
from probes.results import ProbeKind, Reason
from probes.settings import Nameserver, ProbeTarget
from tests.probes.conftest import LOOPBACK, PORTAL_NAME, ContextFactory

BUDGET_S = 1.0
DNS_REASONS = {Reason.DNS_TIMEOUT, Reason.DNS_ERROR, Reason.DNS_SERVFAIL}


def closed_port() -> int:
    """A loopback UDP and TCP port with nothing listening: the resolver process is gone."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        probe_socket.bind((LOOPBACK, 0))
        port: int = probe_socket.getsockname()[1]
    return port


@pytest.mark.parametrize("kind", list(ProbeKind))
async def test_resolver_down_is_a_dns_reason(make_probe_context: ContextFactory,
                                             kind: ProbeKind) -> None:  # fmt: skip
    resolver = Nameserver(LOOPBACK, closed_port())
    async with make_probe_context(timeout_s=BUDGET_S, resolvers=(resolver,)) as ctx:
        started = time.perf_counter()
        result = await PROBES[kind](ProbeTarget(f"https://{PORTAL_NAME}/"), ctx)
        elapsed = time.perf_counter() - started
    assert not result.ok
    assert result.reason in DNS_REASONS, (result.reason, result.error)
    assert result.local_fault is None
    assert elapsed <= BUDGET_S * 1.1 + 0.05
