"""Tamper signals: a target that answers, but not as itself. Pure: values in, values out.

A portal can be up and still be attacked: it serves a defacer's page with 200 OK, its
name moves to another network or name servers, its zone loses DNSSEC, its certificate
comes from another authority. Each result is compared with the target's *baseline*,
learned from its first results and kept in the history, and a difference that is not
ordinary change is a `Deviation`. The core (monitor.core) confirms a deviation by a quick
re-probe, raises a `Signal`, keeps it until an operator acknowledges it (`govwatch ack`),
and then adopts what the target serves now as the new baseline.

Four kinds (`govwatch_tamper_signal{kind}`), each judged from one probe's details:

- `defacement` (HTTP, probes.page fingerprints): the page's text is less than
  `defacement_similarity` like the baseline's (lowered for pages that varied a lot while
  the baseline was learned), its title changes to one sharing no word with the old, it
  gains a defacement phrase ("hacked by"), or it loads scripts from a new foreign host.
  Similar pages move the baseline along, so a news front page drifts without firing.
- `dns_change` (DNS): the NS set changes; an address falls outside every network prefix
  (/24, /48) seen before (a CDN rotating within its prefixes is quiet); the zone's name
  servers disagree on the SOA serial for `serial_split_probes` probes in a row.
- `dnssec_downgrade` (DNS): a zone once validated as secure becomes insecure or bogus.
- `cert_change` (TLS): the leaf comes from another authority (by organisation, so a CA's
  rotating intermediates are one authority), or has a new key while the old certificate
  had more than `renewal_window_days` left (a renewal with a new key by the same
  authority near expiry is normal and adopted), or stops covering the host.

Signals are a separate axis from up and down: they never open an incident.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from monitor.outage import address_prefix
from probes.page import PageFingerprint, sketch_similarity
from probes.results import (
    DnsDetails,
    DnssecStatus,
    HttpDetails,
    ProbeKind,
    ProbeResult,
    Reason,
    TlsDetails,
    certificate_name,
)

SECONDS_PER_DAY: Final = 86_400.0
MAX_PREFIXES: Final = 64  # network prefixes a target's addresses may rotate among
MAX_KEYS: Final = 4  # certificate keys accepted at once (load balancers, a renewal under way)
MAX_SCRIPT_HOSTS: Final = 32


class TamperKind(StrEnum):
    DEFACEMENT = "defacement"
    DNS_CHANGE = "dns_change"
    DNSSEC_DOWNGRADE = "dnssec_downgrade"
    CERT_CHANGE = "cert_change"


# Which probe's results judge which kind.
KINDS_BY_PROBE: Final[Mapping[ProbeKind, tuple[TamperKind, ...]]] = MappingProxyType(
    {
        ProbeKind.HTTP: (TamperKind.DEFACEMENT,),
        ProbeKind.DNS: (TamperKind.DNS_CHANGE, TamperKind.DNSSEC_DOWNGRADE),
        ProbeKind.TLS: (TamperKind.CERT_CHANGE,),
    }
)
PROBE_OF_KIND: Final[Mapping[TamperKind, ProbeKind]] = MappingProxyType(
    {kind: probe for probe, kinds in KINDS_BY_PROBE.items() for kind in kinds}
)


@dataclass(frozen=True, slots=True)
class TamperSettings:
    # Share of a page's text (estimated Jaccard similarity of its word 3-shingles) that must
    # stay like the baseline's; a target's `defacement_similarity` overrides it. Measured on
    # the pages in tests/probes/test_page.py: a news front page with rotated items, a new
    # date and token stays above 0.5; defacements, error and parked pages fall below 0.1.
    defacement_similarity: float = 0.3
    learn_probes: int = 3  # results a page's or a zone's baseline learns from before judging
    renewal_window_days: float = 30.0  # certbot renews with 30 days left
    serial_split_probes: int = 3  # DNS probes in a row with disagreeing SOA serials
    # How often a drifting page baseline is written to the history (it moves on every
    # similar page; a restart compares against one at most this old).
    page_save_interval_s: float = 3600.0


DEFAULT_TAMPER: Final = TamperSettings()


# --- baselines -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageBaseline:
    """What the target's page looks like (the latest page judged ordinary)."""

    title: str
    sketch: tuple[int, ...]
    text_chars: int
    script_hosts: tuple[str, ...]  # every script host seen in ordinary pages, at most 32
    markers: tuple[str, ...]
    excerpt: str
    samples: int  # pages learned from (judging starts at `learn_probes`)
    # The least similarity between consecutive pages while learning: a page that varies a
    # lot by itself gets its threshold lowered in proportion, so it does not fire on its own.
    least_similarity: float
    learned_at: float
    saved_at: float  # when it was last handed to the history
    link_hosts: tuple[str, ...] = ()  # other hosts the ordinary page links to, at most 32
    # Did the page pass the target's content checks (expect_text, fail_if_body_matches)?
    content_check_passed: bool | None = None


@dataclass(frozen=True, slots=True)
class ZoneBaseline:
    """Where the target's name lives: its NS set and the prefixes of its addresses."""

    nameservers: tuple[str, ...]  # sorted, lower case, no trailing dot
    prefixes: tuple[str, ...]  # sorted; see monitor.outage.address_prefix
    samples: int
    serial_split: int  # DNS results in a row whose name servers disagreed on the serial
    learned_at: float


@dataclass(frozen=True, slots=True)
class DnssecBaseline:
    secure: bool  # validated as secure at least once (and not accepted as downgraded since)
    learned_at: float


@dataclass(frozen=True, slots=True)
class CertBaseline:
    issuer: str  # the authority: the issuer's organisation, else its CN (certificate_name)
    issuer_dn: str
    keys: tuple[str, ...]  # accepted public-key hashes, newest first
    not_after: float  # the newest accepted certificate's expiry
    covers_host: bool
    learned_at: float


Baseline = PageBaseline | ZoneBaseline | DnssecBaseline | CertBaseline

BASELINE_TYPES: Final[Mapping[TamperKind, type[Baseline]]] = MappingProxyType(
    {
        TamperKind.DEFACEMENT: PageBaseline,
        TamperKind.DNS_CHANGE: ZoneBaseline,
        TamperKind.DNSSEC_DOWNGRADE: DnssecBaseline,
        TamperKind.CERT_CHANGE: CertBaseline,
    }
)


_B = TypeVar("_B", PageBaseline, ZoneBaseline, DnssecBaseline, CertBaseline)


def baseline_to_json(baseline: Baseline) -> dict[str, Any]:
    return {f.name: _plain(getattr(baseline, f.name)) for f in dataclasses.fields(baseline)}


def baseline_from_json(kind: TamperKind, data: Mapping[str, Any]) -> Baseline:
    """The stored form back; ValueError/TypeError/KeyError if it is not one."""
    cls = BASELINE_TYPES[kind]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data and f.default is not dataclasses.MISSING:
            continue  # a field added since the row was written: its default
        value = data[f.name]
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- verdicts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deviation:
    """A result that is not ordinary change: what to tell the operator, and what an
    acknowledgement would take as the new baseline."""

    summary: str  # one line
    evidence: Mapping[str, Any]  # JSON-ready; see README, tamper signals
    candidate: Baseline


@dataclass(frozen=True, slots=True)
class Verdict:
    baseline: Baseline | None  # the baseline after this result (None: nothing learned yet)
    deviation: Deviation | None = None
    save: bool = False  # the baseline changed in a way worth storing


@dataclass(frozen=True, slots=True)
class Signal:
    """A raised tamper signal: stays until acknowledged."""

    target: str
    kind: TamperKind
    raised_at: float
    summary: str
    evidence: Mapping[str, Any]
    candidate: Baseline  # the latest deviating observation: what an acknowledgement adopts

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.target}:{int(self.raised_at)}"


@dataclass(frozen=True, slots=True)
class SignalChange:
    """A signal raised (`cleared_by` None) or cleared: the core's effect and the history's
    record (tamper_signals, upserted by the signal's id)."""

    signal: Signal
    country: str | None
    cleared_at: float | None = None
    cleared_by: str | None = None  # 'ack' | 'removed'
    note: str | None = None  # the acknowledgement's


@dataclass(frozen=True, slots=True)
class BaselineChange:
    """Store `target`'s baseline of `kind`; None forgets it (it is learned afresh): the
    core's effect and the history's record (tamper_baselines)."""

    target: str
    kind: TamperKind
    baseline: Baseline | None


def judge(
    kind: TamperKind,
    baseline: Baseline | None,
    result: ProbeResult,
    now: float,
    *,
    similarity: float | None = None,
    settings: TamperSettings = DEFAULT_TAMPER,
) -> Verdict | None:
    """Compare one result with the kind's baseline; None when the result says nothing
    about it (a failed connection, a non-HTML page, DNSSEC not determined).
    `similarity`: the target's own defacement threshold, if it has one."""
    details = result.details
    if kind is TamperKind.DEFACEMENT and isinstance(details, HttpDetails):
        threshold = settings.defacement_similarity if similarity is None else similarity
        passed = result.reason is not Reason.HTTP_CONTENT
        return _judge_page(_as(baseline, PageBaseline), details, passed, threshold, now, settings)
    if kind is TamperKind.DNS_CHANGE and isinstance(details, DnsDetails):
        return _judge_zone(_as(baseline, ZoneBaseline), details, now, settings)
    if kind is TamperKind.DNSSEC_DOWNGRADE and isinstance(details, DnsDetails):
        return _judge_dnssec(_as(baseline, DnssecBaseline), details, now)
    if kind is TamperKind.CERT_CHANGE and isinstance(details, TlsDetails):
        return _judge_cert(_as(baseline, CertBaseline), details, now, settings)
    return None


def _as(baseline: Baseline | None, cls: type[_B]) -> _B | None:
    return baseline if isinstance(baseline, cls) else None


# --- defacement ----------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]{2,}")


def _title_words(title: str) -> frozenset[str]:
    return frozenset(_WORD.findall(title.casefold()))


def _site(host: str) -> str:
    """The last two labels: scripts from any *.gov.al are the site's own to gov.al."""
    return ".".join(host.rsplit(".", 2)[-2:])


def _learn_page(
    page: PageFingerprint,
    now: float,
    *,
    samples: int,
    least: float,
    saved_at: float,
    content_check_passed: bool,
    script_hosts: tuple[str, ...] = (),
) -> PageBaseline:
    hosts = tuple(dict.fromkeys((*page.script_hosts, *script_hosts)))[:MAX_SCRIPT_HOSTS]
    return PageBaseline(
        title=page.title,
        sketch=page.sketch,
        text_chars=page.text_chars,
        script_hosts=tuple(sorted(hosts)),
        markers=page.markers,
        excerpt=page.excerpt,
        samples=samples,
        least_similarity=least,
        learned_at=now,
        saved_at=saved_at,
        link_hosts=page.link_hosts,
        content_check_passed=content_check_passed,
    )


def _judge_page(
    baseline: PageBaseline | None,
    details: HttpDetails,
    passed: bool,
    threshold: float,
    now: float,
    settings: TamperSettings,
) -> Verdict | None:
    page = details.page
    if page is None:
        return None
    if baseline is None:
        learned = _learn_page(
            page, now, samples=1, least=1.0, saved_at=now, content_check_passed=passed
        )
        return Verdict(learned, save=True)
    if (
        baseline.samples >= settings.learn_probes
        and page.sketch == baseline.sketch
        and page.title == baseline.title
        and page.markers == baseline.markers
        and all(host in baseline.script_hosts for host in page.script_hosts)
    ):
        return Verdict(baseline)  # the same page again, the common case: nothing to do
    alike = sketch_similarity(baseline.sketch, page.sketch)
    if baseline.samples < settings.learn_probes:
        samples = baseline.samples + 1
        learned = _learn_page(
            page,
            baseline.learned_at,
            samples=samples,
            least=min(baseline.least_similarity, alike),
            saved_at=now,
            content_check_passed=passed,
            script_hosts=baseline.script_hosts,
        )
        return Verdict(learned, save=samples == settings.learn_probes)
    floor = threshold * baseline.least_similarity
    reasons = []
    if alike < floor:
        reasons.append(f"text {alike:.0%} like before (fires below {floor:.0%})")
    old_words, new_words = _title_words(baseline.title), _title_words(page.title)
    if old_words and page.title != baseline.title and not old_words & new_words:
        reasons.append(f"title {baseline.title!r} became {page.title!r}")
    markers = [m for m in page.markers if m not in baseline.markers]
    if markers:
        reasons.append(f"defacement phrase {', '.join(repr(m) for m in markers)}")
    own = _site(urlsplit(details.final_url).hostname or "")
    scripts = [h for h in page.script_hosts if h not in baseline.script_hosts and _site(h) != own]
    if scripts:
        reasons.append(f"scripts from a new host: {', '.join(scripts)}")
    if not reasons:
        # Ordinary change: the baseline follows the page, so a news site drifts freely.
        saved = now - baseline.saved_at >= settings.page_save_interval_s
        moved = _learn_page(
            page,
            baseline.learned_at,
            samples=baseline.samples,
            least=baseline.least_similarity,
            saved_at=now if saved else baseline.saved_at,
            content_check_passed=passed,
            script_hosts=baseline.script_hosts,
        )
        return Verdict(moved, save=saved)
    evidence = {
        "url": details.final_url,
        "status_code": details.status_code,
        "old_title": baseline.title,
        "new_title": page.title,
        "similarity": round(alike, 3),
        "threshold": round(floor, 3),
        "old_excerpt": baseline.excerpt,
        "new_excerpt": page.excerpt,
        "new_markers": markers,
        "new_script_hosts": scripts,
        "new_link_hosts": [h for h in page.link_hosts if h not in baseline.link_hosts],
        "old_text_chars": baseline.text_chars,
        "new_text_chars": page.text_chars,
        # The target's expect_text / fail_if_body_matches, before and now (None: unknown).
        "content_check_before": baseline.content_check_passed,
        "content_check_now": passed,
    }
    candidate = _learn_page(
        page,
        now,
        samples=baseline.samples,
        least=baseline.least_similarity,
        saved_at=now,
        content_check_passed=passed,
        script_hosts=baseline.script_hosts,
    )
    return Verdict(baseline, Deviation("; ".join(reasons), evidence, candidate))


# --- DNS -----------------------------------------------------------------------------


def _judge_zone(
    baseline: ZoneBaseline | None, details: DnsDetails, now: float, settings: TamperSettings
) -> Verdict | None:
    nameservers = tuple(sorted({ns.lower().rstrip(".") for ns in details.nameservers if ns}))
    prefixes = tuple(sorted({address_prefix(a) for a in details.addresses}))
    serials = {a: s for a, s in details.serials.items() if s is not None}
    split = len(set(serials.values())) > 1
    if baseline is None:
        if not nameservers and not prefixes:
            return None
        learned = ZoneBaseline(nameservers, prefixes, 1, int(split), now)
        return Verdict(learned, save=True)
    streak = baseline.serial_split + 1 if split else 0
    known = baseline.prefixes
    if baseline.samples < settings.learn_probes:
        samples = baseline.samples + 1
        learned = ZoneBaseline(
            nameservers or baseline.nameservers,
            _merged(known, prefixes),
            samples,
            streak,
            baseline.learned_at,
        )
        return Verdict(learned, save=samples == settings.learn_probes)
    reasons = []
    moved_ns = bool(nameservers and baseline.nameservers and nameservers != baseline.nameservers)
    if moved_ns:
        reasons.append(
            f"name servers {', '.join(baseline.nameservers)} became {', '.join(nameservers)}"
        )
    new_prefixes = [p for p in prefixes if p not in known] if known else []
    if new_prefixes:
        reasons.append(f"address in a network never seen before: {', '.join(new_prefixes)}")
    if streak >= settings.serial_split_probes:
        shown = ", ".join(f"{a} {s}" for a, s in sorted(serials.items()))
        reasons.append(f"name servers disagree on the SOA serial for {streak} probes ({shown})")
    current = (
        baseline if streak == baseline.serial_split else replace(baseline, serial_split=streak)
    )
    if not reasons:
        return Verdict(current)
    evidence = {
        "zone": details.zone,
        "old_nameservers": list(baseline.nameservers),
        "new_nameservers": list(nameservers),
        "addresses": list(details.addresses),
        "known_prefixes": list(known),
        "new_prefixes": new_prefixes,
        "serials": {a: s for a, s in sorted(serials.items())},
        "serial_split_probes": streak,
    }
    candidate = ZoneBaseline(
        nameservers or baseline.nameservers,
        _merged(known, prefixes),
        baseline.samples,
        0,
        now,
    )
    return Verdict(current, Deviation("; ".join(reasons), evidence, candidate))


def _merged(known: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    """Known prefixes plus new ones, the newest kept when there are too many."""
    fresh = [p for p in new if p not in known]
    kept = list(known)[: max(0, MAX_PREFIXES - len(fresh))]
    return tuple(sorted({*kept, *fresh}))


def _judge_dnssec(
    baseline: DnssecBaseline | None, details: DnsDetails, now: float
) -> Verdict | None:
    dnssec = details.dnssec
    if dnssec is None or dnssec.status is DnssecStatus.INDETERMINATE:
        return None
    secure = dnssec.status is DnssecStatus.SECURE
    if baseline is None or (secure and not baseline.secure):
        return Verdict(DnssecBaseline(secure, now), save=True)
    if secure or not baseline.secure:
        return Verdict(baseline)
    evidence = {
        "zone": details.zone,
        "old_status": DnssecStatus.SECURE.value,
        "new_status": dnssec.status.value,
        "signed": dnssec.signed,
        "error": dnssec.error,
    }
    summary = f"zone {details.zone or details.host} was signed and validated; now " + (
        "unsigned" if dnssec.status is DnssecStatus.INSECURE else "bogus (fails validation)"
    )
    return Verdict(baseline, Deviation(summary, evidence, DnssecBaseline(False, now)))


# --- certificates --------------------------------------------------------------------


def _judge_cert(
    baseline: CertBaseline | None, details: TlsDetails, now: float, settings: TamperSettings
) -> Verdict | None:
    leaf = details.certificates.leaf
    key = leaf.public_key_sha256 or leaf.sha256_fingerprint
    issuer = certificate_name(leaf.issuer)
    covers = details.hostname_match
    if baseline is None:
        learned = CertBaseline(issuer, leaf.issuer, (key,), leaf.not_after, covers, now)
        return Verdict(learned, save=True)
    days_left = (baseline.not_after - now) / SECONDS_PER_DAY
    reasons = []
    if baseline.covers_host and not covers:
        names = ", ".join(leaf.sans) or "none"
        reasons.append(
            f"no longer covers {details.server_name or details.address} (names: {names})"
        )
    if issuer != baseline.issuer:
        reasons.append(f"issued by {issuer!r}, was {baseline.issuer!r}")
    elif key not in baseline.keys and days_left > settings.renewal_window_days:
        reasons.append(
            f"new key {days_left:.0f} days before the old certificate expired "
            f"(renewals come in the last {settings.renewal_window_days:.0f})"
        )
    keys = baseline.keys if key in baseline.keys else (key, *baseline.keys)[:MAX_KEYS]
    adopted = CertBaseline(
        issuer,
        leaf.issuer,
        keys,
        max(baseline.not_after, leaf.not_after),
        covers,
        baseline.learned_at,
    )
    if not reasons:
        # A renewal by the same authority, or the same key re-issued: the new normal.
        changed = adopted.keys != baseline.keys or adopted.covers_host != baseline.covers_host
        return Verdict(adopted, save=changed or adopted.not_after != baseline.not_after)
    evidence = {
        "host": details.server_name or details.address,
        "old_issuer": baseline.issuer,
        "new_issuer": issuer,
        "new_issuer_dn": leaf.issuer,
        "old_keys": list(baseline.keys),
        "new_key": key,
        "old_not_after": baseline.not_after,
        "old_days_left": round(days_left, 1),
        "new_not_after": leaf.not_after,
        "new_subject": leaf.subject,
        "new_names": list(leaf.sans),
        "covers_host": covers,
        "renewal_window_days": settings.renewal_window_days,
    }
    candidate = replace(adopted, learned_at=now)
    return Verdict(baseline, Deviation("; ".join(reasons), evidence, candidate))
