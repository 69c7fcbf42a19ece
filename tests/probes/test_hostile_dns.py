"""Hostile DNS: a zone with thousands of name servers, and this machine out of descriptors."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

import pytest

from probes.dns import MAX_NS_ADDRESSES, MAX_NS_NAMES, probe_dns
from probes.results import DnsDetails, LocalFault, Reason
from probes.settings import Nameserver, ProbeTarget
from simulator.dns_server import DnsServer, make_zone
from tests.probes.conftest import LOOPBACK, ContextFactory
from tests.probes.test_http import descriptors_exhausted

BUDGET_S = 8.0  # the hostile server is slow to write 3,000-name answers


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _serve_big_zone(names: int, reply: Connection) -> None:
    """In a child process: the hostile zone's server must not spend the probe's CPU."""

    async def serve() -> None:
        nameservers = {f"ns{i}": LOOPBACK for i in range(names)}
        async with DnsServer(hosts=(LOOPBACK,)) as server:
            server.add_zone(make_zone("big.test.", f"www IN A {LOOPBACK}", nameservers=nameservers))
            reply.send(server.nameserver().port)
            await asyncio.Event().wait()  # until the parent terminates this process

    asyncio.run(serve())


@contextlib.contextmanager
def big_zone_server(names: int) -> Iterator[Nameserver]:
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_serve_big_zone, args=(names, theirs), daemon=True
    )
    child.start()
    try:
        assert ours.poll(60), "the zone server did not start"
        yield Nameserver(LOOPBACK, ours.recv())
    finally:
        child.terminate()
        child.join(5)


async def test_a_3000_name_ns_set_is_checked_within_bounds(
    make_probe_context: ContextFactory,
) -> None:
    with big_zone_server(3000) as resolver:
        async with make_probe_context(timeout_s=BUDGET_S, resolvers=(resolver,)) as ctx:
            baseline, peak = open_fds(), 0

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, open_fds())
                    await asyncio.sleep(0.002)

            watcher = asyncio.create_task(watch())
            started = time.perf_counter()
            result = await probe_dns(ProbeTarget("https://www.big.test/"), ctx)
            elapsed = time.perf_counter() - started
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    assert result.ok, result.error
    assert elapsed <= BUDGET_S * 1.1 + 0.05
    details = result.details
    assert isinstance(details, DnsDetails)
    assert len(details.nameservers) == MAX_NS_NAMES
    assert len(details.authoritative) <= MAX_NS_ADDRESSES
    assert details.error is not None and "NS set of 3000 names" in details.error
    # 6,007 sockets before the bound; now a few dozen at most.
    assert peak - baseline < 64, (baseline, peak)


async def test_out_of_descriptors_is_the_monitors_fault_not_the_targets(
    make_probe_context: ContextFactory,
) -> None:
    async with DnsServer(hosts=(LOOPBACK,)) as server:
        server.add_zone(make_zone("portal.test.", f"www IN A {LOOPBACK}"))
        async with make_probe_context(timeout_s=1.0, resolvers=(server.nameserver(),)) as ctx:
            with descriptors_exhausted():
                result = await probe_dns(ProbeTarget("https://www.portal.test/"), ctx)
    assert not result.ok
    assert result.local_fault is LocalFault.RESOURCES, result.error


class _Malformed(asyncio.DatagramProtocol):
    """A resolver that answers every query with broken bytes made from the query."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.answer(data), addr)


MALFORMED = [
    pytest.param(lambda q: b"\xde\xad\xbe\xef" * 50, id="garbage"),
    pytest.param(lambda q: bytes([q[0] ^ 0xFF, q[1]]) + q[2:], id="wrong-id"),
    pytest.param(lambda q: q[:5], id="truncated-header"),
    pytest.param(lambda q: q[:2] + b"\x81\x80\x00\x01\x00\x05" + q[8:], id="answer-count-lies"),
]


@pytest.mark.parametrize("answer", MALFORMED)
async def test_malformed_answers_are_a_dns_reason(
    make_probe_context: ContextFactory, answer: Callable[[bytes], bytes]
) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Malformed(answer), local_addr=(LOOPBACK, 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        async with make_probe_context(
            timeout_s=1.0, resolvers=(Nameserver(LOOPBACK, port),)
        ) as ctx:
            started = time.perf_counter()
            result = await probe_dns(ProbeTarget("https://www.portal.test/"), ctx)
            elapsed = time.perf_counter() - started
    finally:
        transport.close()
    assert not result.ok
    assert result.reason in {Reason.DNS_TIMEOUT, Reason.DNS_ERROR}, (result.reason, result.error)
    assert elapsed <= 1.1 + 0.05


async def test_a_cname_loop_and_a_1000_record_answer(make_probe_context: ContextFactory) -> None:
    many = "\n".join(f"many IN A 127.1.{i // 250}.{i % 250 + 1}" for i in range(1000))
    loop = "loop-a IN CNAME loop-b\nloop-b IN CNAME loop-a"
    async with DnsServer(hosts=(LOOPBACK,)) as server:
        server.add_zone(make_zone("portal.test.", f"{many}\n{loop}"))
        async with make_probe_context(timeout_s=2.0, resolvers=(server.nameserver(),)) as ctx:
            looping = await probe_dns(ProbeTarget("https://loop-a.portal.test/"), ctx)
            plenty = await probe_dns(ProbeTarget("https://many.portal.test/"), ctx)
    assert not looping.ok
    assert looping.reason in {Reason.DNS_ERROR, Reason.DNS_SERVFAIL, Reason.DNS_TIMEOUT}
    assert plenty.ok, plenty.error  # 1,000 addresses: truncated over UDP, read over TCP
    assert isinstance(plenty.details, DnsDetails) and len(plenty.details.addresses) == 1000
