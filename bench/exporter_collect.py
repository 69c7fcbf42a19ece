"""How long one /metrics collection and rendering takes, at the catalogue's size and beyond.

    .venv/bin/python -m bench.exporter_collect [--targets 170 10000]

Builds the daemon's world through the pure core (HTTP, DNS and TLS results with full
details for every target, 1 in 10 failing) and prints the CPU time of collect() and of
generate_latest() (what a scrape costs; the daemon renders it in a thread), best of 5.
Goal: a scrape of 10,000 targets well under 2 s.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

from prometheus_client import generate_latest

from monitor.core import Result, Tick, initial_world, step
from monitor.exporter import Renderer, SnapshotCollector, make_registry
from monitor.settings import Canary, OutageSettings, Target
from monitor.snapshot import Snapshot
from probes.results import (
    CertificateReport,
    CertificateSummary,
    DnsDetails,
    DnssecDetails,
    DnssecStatus,
    HttpDetails,
    ProbeKind,
    ProbeResult,
    Reason,
    TlsDetails,
)

T0 = 1_800_000_000.0
DAY = 86_400.0
COUNTRIES = ("AL", "BA", "BG", "GR", "HR", "MD", "ME", "MK", "RO", "RS", "SI", "TR", "XK")


def _cpu(work: Callable[[], object]) -> float:
    start = time.thread_time()
    work()
    return time.thread_time() - start


def _same(snapshot: Snapshot) -> Snapshot:
    return snapshot


def _drain(collector: SnapshotCollector) -> None:
    list(collector.collect())


def _results(url: str, host: str, failing: bool) -> list[ProbeResult]:
    http = HttpDetails(
        url=url, final_url=url, redirects=0, redirect_chain=(url,), status_code=200,
        http_version="1.1", body_bytes=1234, content_type="text/html", content_encoding=None,
        resolved_addresses=("127.0.0.1",), peer_address="127.0.0.1", peer_port=443,
        tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384", server="nginx",
    )  # fmt: skip
    dnssec = DnssecDetails(DnssecStatus.SECURE, True, True, ".", T0 + 7 * DAY, 7.0)
    dns = DnsDetails(host=host, addresses=("127.0.0.1",), resolvers=(), dnssec=dnssec)
    leaf = CertificateSummary(
        subject=f"CN={host}", issuer="CN=Bench CA", dns_names=(host,), ip_addresses=(),
        key_type="EC", key_bits=256, not_before=T0 - DAY, not_after=T0 + 60 * DAY,
        serial="01", sha256_fingerprint="00" * 32, signature_algorithm="ecdsa-with-SHA256",
        is_ca=False,
    )  # fmt: skip
    report = CertificateReport(
        (leaf,), T0, leaf.not_after, 60.0, leaf.not_after, 60.0, leaf.subject
    )
    tls = TlsDetails(
        address="127.0.0.1", server_name=host, version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384", cipher_bits=256, verified=True, verify_error=None,
        hostname_match=True, ocsp_stapled=False, ocsp_status=None, subject=leaf.subject,
        issuer=leaf.issuer, leaf_expiry=leaf.not_after, earliest_expiry=leaf.not_after,
        certificates=report,
    )  # fmt: skip
    phases = {"resolve": 0.001, "connect": 0.002, "tls": 0.01, "processing": 0.01, "transfer": 0.0}
    reason = Reason.CONNECT_TIMEOUT if failing else None
    return [
        ProbeResult(ProbeKind.HTTP, not failing, reason, 0.02, T0, phases, http),
        ProbeResult(ProbeKind.DNS, True, None, 0.004, T0, {"resolve": 0.004}, dns),
        ProbeResult(ProbeKind.TLS, True, None, 0.01, T0, {"tls": 0.01}, tls),
    ]


def snapshot_of(count: int) -> Snapshot:
    targets = tuple(
        Target(
            name=f"site{i}.gov.test",
            url=f"https://site{i}.gov.test/",
            country=COUNTRIES[i % len(COUNTRIES)],
            sector="portal",
        )
        for i in range(count)
    )
    canaries = tuple(Canary(name=f"canary{i}", url=f"https://canary{i}.test/") for i in range(3))
    world = initial_world(targets, canaries, OutageSettings(confirm_reprobes=0), 60.0)
    for canary in canaries:
        for result in _results(canary.url, canary.name, False)[:2]:
            world, _ = step(world, Result(canary.name, result), T0)
    for i, target in enumerate(targets):
        for result in _results(target.url, target.name, i % 10 == 0):
            world, _ = step(world, Result(target.name, result), T0 + 1)
    world, _ = step(world, Tick(), T0 + 2)
    return Snapshot(world, T0 + 2, T0 - 600, None, 0.1, T0 + 1, True, T0 - 600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[170, 10_000])
    args = parser.parse_args()
    print(
        "| targets | exposition | collect() CPU | generate_latest() CPU"
        " | Renderer: first scrape | Renderer: next scrapes (what /metrics costs) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for count in args.targets:
        snapshot = snapshot_of(count)
        collector = SnapshotCollector(functools.partial(_same, snapshot), process_metrics=False)
        registry = make_registry(functools.partial(_same, snapshot), process_metrics=False)
        collect = min(_cpu(functools.partial(_drain, collector)) for _ in range(3))
        library = min(_cpu(functools.partial(generate_latest, registry)) for _ in range(3))
        renderer = Renderer(registry)
        first = _cpu(renderer.render)
        ours = min(_cpu(renderer.render) for _ in range(3))
        size = len(renderer.render())
        print(
            f"| {count:,} | {size / 2**20:.1f} MiB | {collect * 1000:.0f} ms"
            f" | {library * 1000:.0f} ms | {first * 1000:.0f} ms | {ours * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
