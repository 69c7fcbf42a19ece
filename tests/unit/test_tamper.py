"""The tamper judges (monitor.tamper), table-driven: each kind fires on its attack and
stays quiet on its benign twin, and baselines survive the history's JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from monitor.tamper import (
    DEFAULT_TAMPER,
    CertBaseline,
    DnssecBaseline,
    PageBaseline,
    TamperKind,
    Verdict,
    ZoneBaseline,
    baseline_from_json,
    baseline_to_json,
    judge,
)
from probes.page import fingerprint, sketch_similarity
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
from tests.probes.test_page import DEFACED, NEWS, portal

URL = "https://e-albania.al.test/"
T0 = 1_700_000_000.0
DAY = 86_400.0


# --- results ---------------------------------------------------------------------------


def http(markup: str | None, *, status: int = 200, ok: bool = True) -> ProbeResult:
    details = HttpDetails(
        url=URL,
        final_url=URL,
        redirects=0,
        redirect_chain=(URL,),
        status_code=status,
        http_version="1.1",
        body_bytes=len(markup or ""),
        content_type="text/html",
        content_encoding=None,
        resolved_addresses=("127.0.0.1",),
        peer_address="127.0.0.1",
        peer_port=443,
        tls_version="TLSv1.3",
        tls_cipher=None,
        server=None,
        page=fingerprint(markup, URL) if markup is not None else None,
    )
    return ProbeResult(
        ProbeKind.HTTP, ok, None if ok else Reason.HTTP_CONTENT, 0.1, T0, details=details
    )


def dns(
    addresses: Sequence[str] = ("192.0.2.10",),
    nameservers: Sequence[str] = ("ns1.akshi.al.test.", "ns2.akshi.al.test."),
    serials: dict[str, int | None] | None = None,
    dnssec: DnssecStatus | None = DnssecStatus.SECURE,
) -> ProbeResult:
    details = DnsDetails(
        host="e-albania.al.test",
        addresses=tuple(addresses),
        resolvers=(),
        zone="al.test",
        nameservers=tuple(nameservers),
        serials=serials or {"198.51.100.1": 7, "198.51.100.2": 7},
        dnssec=None
        if dnssec is None
        else DnssecDetails(dnssec, dnssec is not DnssecStatus.INSECURE, True, ".", None, None),
    )
    return ProbeResult(ProbeKind.DNS, True, None, 0.01, T0, details=details)


def tls(
    *,
    issuer: str = "CN=R11,O=Let's Encrypt,C=US",
    key: str = "k1",
    not_after: float = T0 + 80 * DAY,
    hostname_match: bool = True,
) -> ProbeResult:
    leaf = CertificateSummary(
        subject="CN=e-albania.al.test",
        issuer=issuer,
        dns_names=("e-albania.al.test",) if hostname_match else ("other.test",),
        ip_addresses=(),
        key_type="EC",
        key_bits=256,
        not_before=not_after - 90 * DAY,
        not_after=not_after,
        serial="1",
        sha256_fingerprint=f"fp-{key}-{not_after}",
        signature_algorithm="ecdsa-with-SHA256",
        is_ca=False,
        public_key_sha256=key,
    )
    report = CertificateReport((leaf,), T0, not_after, 0, not_after, 0, leaf.subject)
    details = TlsDetails(
        address="127.0.0.1",
        server_name="e-albania.al.test",
        version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        cipher_bits=128,
        verified=True,
        verify_error=None,
        hostname_match=hostname_match,
        ocsp_stapled=False,
        ocsp_status=None,
        subject=leaf.subject,
        issuer=issuer,
        leaf_expiry=not_after,
        earliest_expiry=not_after,
        certificates=report,
    )
    return ProbeResult(ProbeKind.TLS, True, None, 0.05, T0, details=details)


def run(
    kind: TamperKind,
    results: Sequence[ProbeResult],
    *,
    at: float = T0,
    similarity: float | None = None,
) -> Verdict:
    """Feed results one after another (a second apart); the last verdict."""
    baseline = None
    verdict: Verdict | None = None
    for index, result in enumerate(results):
        verdict = judge(kind, baseline, result, at + index, similarity=similarity)
        assert verdict is not None
        baseline = verdict.baseline
    assert verdict is not None
    return verdict


LEARNED = [http(portal(NEWS))] * DEFAULT_TAMPER.learn_probes


# --- defacement ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "page"),
    [
        ("the same page", portal(NEWS)),
        ("a new date and session token", portal(NEWS, date="16.07.2022", token="f" * 32)),
        ("a news item rotated in", portal(["Lajm i ri: sporteli digjital në Shkodër", *NEWS[:-1]])),
        ("a banner", portal(NEWS, extra="<div>Mirëmbajtje sot nga ora 22:00</div>")),
        ("a quarter of the news replaced", portal(["Tema e re sot e parë", "Tema e dytë", "E treta", *NEWS[3:]])),
        ("its own new script", portal(NEWS, extra="<script src='https://static.al.test/a.js'></script>")),
    ],
)  # fmt: skip
def test_ordinary_change_is_not_a_defacement(case: str, page: str) -> None:
    verdict = run(TamperKind.DEFACEMENT, [*LEARNED, http(page)])
    assert verdict.deviation is None, case


@pytest.mark.parametrize(
    ("case", "page", "said"),
    [
        ("a defacement", DEFACED, "defacement phrase 'hacked by'"),
        ("an unrelated 200 page", "<html><title>Index of /</title><body>Apache Server at port 443 nothing here</body></html>", "text 0% like before"),
        ("the title replaced", portal(NEWS).replace("e-Albania | Portali qeveritar", "Free casino bonus"), "title 'e-Albania | Portali qeveritar' became 'Free casino bonus'"),
        ("a foreign script injected", portal(NEWS, extra="<script src='https://miner.evil.test/c.js'></script>"), "scripts from a new host: miner.evil.test"),
    ],
)  # fmt: skip
def test_a_defacement_is_seen_with_its_evidence(case: str, page: str, said: str) -> None:
    verdict = run(TamperKind.DEFACEMENT, [*LEARNED, http(page, ok=False)])
    assert verdict.deviation is not None, case
    assert said in verdict.deviation.summary, verdict.deviation.summary
    evidence = verdict.deviation.evidence
    assert evidence["old_title"] == "e-Albania | Portali qeveritar"
    assert evidence["new_title"] == fingerprint(page, URL).title
    assert evidence["new_excerpt"] == fingerprint(page, URL).excerpt
    json.dumps(evidence)  # stored as JSON
    # The baseline holds still: a deviation never becomes "normal" by itself.
    assert verdict.baseline == run(TamperKind.DEFACEMENT, LEARNED).baseline


def test_the_evidence_says_what_the_content_checks_and_the_links_did() -> None:
    """expect_text and links' hosts are in the baseline: the evidence shows the content
    check passing before and failing now, and the hosts the new page links to."""
    page = portal(NEWS).replace("</footer>", "<a href='https://mirror.evil.test/'>x</a></footer>")
    verdict = run(TamperKind.DEFACEMENT, [*LEARNED, http(DEFACED, ok=False)])
    assert verdict.deviation is not None
    evidence = verdict.deviation.evidence
    assert (evidence["content_check_before"], evidence["content_check_now"]) == (True, False)
    linked = run(
        TamperKind.DEFACEMENT, [*LEARNED, http(page.replace("Mirë se vini", "HACKED BY X"))]
    )
    assert linked.deviation is not None
    assert linked.deviation.evidence["new_link_hosts"] == ["mirror.evil.test"]
    learned = run(TamperKind.DEFACEMENT, LEARNED).baseline
    assert isinstance(learned, PageBaseline)
    assert learned.link_hosts == ("akshi.gov.al.test",) and learned.content_check_passed


def test_a_baseline_stored_before_a_field_existed_reads_with_its_default() -> None:
    learned = run(TamperKind.DEFACEMENT, LEARNED).baseline
    assert learned is not None
    stored = baseline_to_json(learned)
    del stored["link_hosts"], stored["content_check_passed"]
    back = baseline_from_json(TamperKind.DEFACEMENT, stored)
    assert isinstance(back, PageBaseline)
    assert back.link_hosts == () and back.content_check_passed is None


def test_nothing_fires_while_the_baseline_is_learned() -> None:
    verdict = run(TamperKind.DEFACEMENT, [http(portal(NEWS)), http(DEFACED)])
    assert verdict.deviation is None
    assert isinstance(verdict.baseline, PageBaseline) and verdict.baseline.samples == 2


def test_a_page_that_drifts_a_little_each_day_never_fires() -> None:
    """A news front page: one new item a day for a month, the oldest dropped."""
    pages = [http(portal(NEWS))] * 3
    news = list(NEWS)
    for day in range(30):
        news = [f"Lajmi i ditës {day}: shërbim i ri në rrethin numër {day}", *news[:-1]]
        pages.append(http(portal(news, date=f"{day + 1}.08.2022")))
    baseline = None
    for index, result in enumerate(pages):
        verdict = judge(TamperKind.DEFACEMENT, baseline, result, T0 + index * DAY)
        assert verdict is not None and verdict.deviation is None, index
        baseline = verdict.baseline
    assert similar_to_start(baseline) < 0.5  # it did drift far: compared with day 0 it would fire


def similar_to_start(baseline: object) -> float:
    assert isinstance(baseline, PageBaseline)
    return sketch_similarity(fingerprint(portal(NEWS), URL).sketch, baseline.sketch)


def test_the_threshold_is_per_target() -> None:
    half = portal(NEWS[:6] + [f"Tema e re {i} sot në portal" for i in range(6)])
    assert run(TamperKind.DEFACEMENT, [*LEARNED, http(half)]).deviation is None
    strict = run(TamperKind.DEFACEMENT, [*LEARNED, http(half)], similarity=0.9)
    assert strict.deviation is not None and "text" in strict.deviation.summary


def test_a_page_that_varies_by_itself_gets_a_lower_threshold() -> None:
    """A page whose every load shows other stories: its threshold falls with how alike its
    pages were while the baseline was learned, so its own variety does not fire."""
    words = ["Tirana", "Durrës", "Shkodër", "Vlorë", "Korçë", "Elbasan", "Fier", "Berat"]
    pages = [
        portal([f"Lajm nga {words[(i + j) % 8]} {words[(i * 3 + j) % 8]} sot" for j in range(12)])
        for i in range(5)
    ]
    verdicts = [run(TamperKind.DEFACEMENT, [http(p) for p in pages[: n + 1]]) for n in range(5)]
    assert all(v.deviation is None for v in verdicts)
    learned = verdicts[-1].baseline
    assert isinstance(learned, PageBaseline) and learned.least_similarity < 0.8


def test_results_without_a_page_say_nothing() -> None:
    assert judge(TamperKind.DEFACEMENT, None, http(None), T0) is None
    failed = ProbeResult(ProbeKind.HTTP, False, Reason.CONNECT_TIMEOUT, 2.0, T0)
    assert judge(TamperKind.DEFACEMENT, None, failed, T0) is None
    assert judge(TamperKind.CERT_CHANGE, None, http(portal(NEWS)), T0) is None


# --- DNS -------------------------------------------------------------------------------

ZONE_LEARNED = [dns(["192.0.2.10"]), dns(["192.0.2.11"]), dns(["192.0.2.10", "192.0.2.12"])]


@pytest.mark.parametrize(
    ("case", "result"),
    [
        ("the same answer", dns(["192.0.2.10"])),
        ("a CDN rotating within its prefix", dns(["192.0.2.99", "192.0.2.200"])),
        ("the NS set in another order and case", dns(nameservers=["NS2.akshi.al.test", "ns1.akshi.al.test."])),
        ("a serial mismatch for one probe (a zone update propagating)", dns(serials={"a": 7, "b": 8})),
        ("no NS set in this answer", dns(nameservers=[])),
    ],
)  # fmt: skip
def test_ordinary_dns_change_is_quiet(case: str, result: ProbeResult) -> None:
    assert run(TamperKind.DNS_CHANGE, [*ZONE_LEARNED, result]).deviation is None, case


@pytest.mark.parametrize(
    ("case", "results", "said"),
    [
        ("the NS set changes", [dns(nameservers=["ns1.hijack.test", "ns2.hijack.test"])], "name servers ns1.akshi.al.test, ns2.akshi.al.test became ns1.hijack.test, ns2.hijack.test"),
        ("the address moves to another network", [dns(["203.0.113.66"])], "address in a network never seen before: 203.0.113.0/24"),
        ("the name servers disagree on the serial for three probes", [dns(serials={"a": 7, "b": 6})] * 3, "disagree on the SOA serial for 3 probes (a 7, b 6)"),
    ],
)  # fmt: skip
def test_dns_changes_fire(case: str, results: list[ProbeResult], said: str) -> None:
    verdict = run(TamperKind.DNS_CHANGE, [*ZONE_LEARNED, *results])
    assert verdict.deviation is not None, case
    assert said in verdict.deviation.summary, verdict.deviation.summary
    candidate = verdict.deviation.candidate
    assert isinstance(candidate, ZoneBaseline) and candidate.serial_split == 0


def test_acknowledged_prefixes_are_kept_with_the_new_one() -> None:
    verdict = run(TamperKind.DNS_CHANGE, [*ZONE_LEARNED, dns(["203.0.113.66"])])
    assert verdict.deviation is not None
    candidate = verdict.deviation.candidate
    assert isinstance(candidate, ZoneBaseline)
    assert candidate.prefixes == ("192.0.2.0/24", "203.0.113.0/24")
    again = judge(TamperKind.DNS_CHANGE, candidate, dns(["192.0.2.10"]), T0 + 10)
    assert again is not None and again.deviation is None


@pytest.mark.parametrize(
    ("case", "before", "after", "fires"),
    [
        ("secure stays secure", DnssecStatus.SECURE, DnssecStatus.SECURE, False),
        ("secure becomes unsigned", DnssecStatus.SECURE, DnssecStatus.INSECURE, True),
        ("secure becomes bogus", DnssecStatus.SECURE, DnssecStatus.BOGUS, True),
        ("never signed stays unsigned", DnssecStatus.INSECURE, DnssecStatus.INSECURE, False),
        ("unsigned becomes signed (an upgrade)", DnssecStatus.INSECURE, DnssecStatus.SECURE, False),
        (
            "a validation that could not finish",
            DnssecStatus.SECURE,
            DnssecStatus.INDETERMINATE,
            False,
        ),
    ],
)
def test_dnssec_downgrade(
    case: str, before: DnssecStatus, after: DnssecStatus, fires: bool
) -> None:
    first = judge(TamperKind.DNSSEC_DOWNGRADE, None, dns(dnssec=before), T0)
    assert first is not None
    verdict = judge(TamperKind.DNSSEC_DOWNGRADE, first.baseline, dns(dnssec=after), T0 + 1)
    deviation = verdict.deviation if verdict is not None else None
    assert (deviation is not None) is fires, case
    if deviation is not None:
        assert deviation.evidence["new_status"] == after.value
        assert deviation.candidate == DnssecBaseline(False, T0 + 1)


# --- certificates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "old", "new", "said"),
    [
        ("the same certificate", tls(), tls(), None),
        ("a renewal by the same CA, new key, 20 days before expiry",
         tls(not_after=T0 + 20 * DAY), tls(key="k2", not_after=T0 + 110 * DAY), None),
        ("the CA's other intermediate (R10 to R11)",
         tls(issuer="CN=R10,O=Let's Encrypt,C=US"), tls(issuer="CN=R11,O=Let's Encrypt,C=US"), None),
        ("the same key re-issued early (a SAN added)", tls(), tls(not_after=T0 + 89 * DAY), None),
        ("another CA", tls(), tls(issuer="CN=Evil CA,O=Evil Trust,C=XX", key="k2"),
         "issued by 'Evil Trust', was \"Let's Encrypt\""),
        ("a new key 80 days before expiry", tls(), tls(key="k2", not_after=T0 + 90 * DAY),
         "new key 80 days before the old certificate expired"),
        ("the host no longer covered", tls(), tls(hostname_match=False), "no longer covers e-albania.al.test"),
    ],
)  # fmt: skip
def test_certificate_change(
    case: str, old: ProbeResult, new: ProbeResult, said: str | None
) -> None:
    first = judge(TamperKind.CERT_CHANGE, None, old, T0)
    assert first is not None and first.save
    verdict = judge(TamperKind.CERT_CHANGE, first.baseline, new, T0)
    assert verdict is not None
    if said is None:
        assert verdict.deviation is None, case
        assert isinstance(verdict.baseline, CertBaseline)
        assert new.details is not None
        assert verdict.baseline.keys[0] == "k2" or "k2" not in str(new.details)
    else:
        assert verdict.deviation is not None, case
        assert said in verdict.deviation.summary, verdict.deviation.summary


def test_a_renewed_key_is_accepted_and_the_old_one_still_known() -> None:
    """Load balancers serve the old and the new certificate side by side for a while."""
    first = judge(TamperKind.CERT_CHANGE, None, tls(not_after=T0 + 10 * DAY), T0)
    assert first is not None
    renewed = judge(
        TamperKind.CERT_CHANGE, first.baseline, tls(key="k2", not_after=T0 + 100 * DAY), T0
    )
    assert renewed is not None and renewed.deviation is None and renewed.save
    old_again = judge(TamperKind.CERT_CHANGE, renewed.baseline, tls(not_after=T0 + 10 * DAY), T0)
    assert old_again is not None and old_again.deviation is None
    assert isinstance(old_again.baseline, CertBaseline)
    assert old_again.baseline.not_after == T0 + 100 * DAY


# --- storage form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "results"),
    [
        (TamperKind.DEFACEMENT, LEARNED),
        (TamperKind.DNS_CHANGE, ZONE_LEARNED),
        (TamperKind.DNSSEC_DOWNGRADE, [dns()]),
        (TamperKind.CERT_CHANGE, [tls()]),
    ],
)
def test_baselines_survive_json(kind: TamperKind, results: list[ProbeResult]) -> None:
    baseline = run(kind, results).baseline
    assert baseline is not None
    stored = json.loads(json.dumps(baseline_to_json(baseline)))
    assert baseline_from_json(kind, stored) == baseline
