"""DNSSEC judgement: pure functions over records the DNS probe already fetched.

Fetching lives in probes/dns.py; this module decides, without I/O, whether a
zone's chain of trust from a trust anchor down to its records is secure,
insecure (a delegation without DS: a fact, not a failure), bogus, or
indeterminate (no anchor covers the zone, or records could not be fetched).

Denial of existence (NSEC proofs that a DS is really absent) is not checked:
an absent DS is taken as an insecure delegation, as the resolver reported it.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dns.dnssec
import dns.dnssectypes
import dns.exception
import dns.name
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zonefile
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from probes.results import DnssecStatus

SHIPPED_ANCHORS = "root-anchors.zone"


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """DS and/or DNSKEY records trusted for one owner name."""

    name: dns.name.Name
    ds: tuple[DS, ...] = ()
    dnskeys: tuple[DNSKEY, ...] = ()


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the resolver said about one (name, type): the RRset with its RRSIGs, or none.

    `error` is set when no usable answer arrived; `rrset` is None for NODATA/NXDOMAIN.
    """

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    rrset: dns.rrset.RRset | None = None
    rrsigs: dns.rrset.RRset | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Delegation:
    """A name between the trust anchor and the zone, top-down, with what decides its cut."""

    name: dns.name.Name
    ds: Lookup
    dnskey: Lookup
    # SOA at `name`, telling a zone apex (an unsigned cut) from an ordinary name;
    # None for the probed zone itself, a cut by definition.
    soa: Lookup | None


@dataclass(frozen=True, slots=True)
class ChainEvidence:
    zone: dns.name.Name
    anchor: TrustAnchor | None
    anchor_dnskey: Lookup | None  # DNSKEY at the anchor's name; None without an anchor
    delegations: tuple[Delegation, ...]  # strictly below the anchor, down to the zone
    zone_dnskey: Lookup
    records: tuple[Lookup, ...]  # the zone's own RRsets to verify (SOA, NS, the host's A/AAAA)


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    status: DnssecStatus
    signed: bool  # the zone publishes DNSKEYs
    earliest_expiry: float | None  # unix seconds: the first of the zone's RRSIGs to expire
    error: str | None


class _Bogus(Exception):
    pass


class _Indeterminate(Exception):
    pass


# -- trust anchors ---------------------------------------------------------------------


def parse_trust_anchors(text: str) -> tuple[TrustAnchor, ...]:
    """Zone-file DS/DNSKEY lines (TTL and class optional) -> one anchor per owner name."""
    ds_by_name: dict[dns.name.Name, list[DS]] = {}
    keys_by_name: dict[dns.name.Name, list[DNSKEY]] = {}
    for rrset in dns.zonefile.read_rrsets(text, rdclass=None, default_ttl=3600):
        if rrset.rdtype == dns.rdatatype.DS:
            ds_by_name.setdefault(rrset.name, []).extend(cast(DS, rd) for rd in rrset)
        elif rrset.rdtype == dns.rdatatype.DNSKEY:
            keys_by_name.setdefault(rrset.name, []).extend(cast(DNSKEY, rd) for rd in rrset)
        else:
            raise ValueError(f"trust anchors must be DS or DNSKEY records, not {rrset.rdtype!r}")
    return tuple(
        TrustAnchor(name, tuple(ds_by_name.get(name, ())), tuple(keys_by_name.get(name, ())))
        for name in {**ds_by_name, **keys_by_name}
    )


def load_trust_anchors(path: Path | None) -> tuple[TrustAnchor, ...]:
    """The anchors in `path`, or the root's shipped in probes/data when None."""
    if path is None:
        text = importlib.resources.files("probes.data").joinpath(SHIPPED_ANCHORS).read_text()
    else:
        text = path.read_text()
    return parse_trust_anchors(text)


def anchor_for(anchors: Iterable[TrustAnchor], zone: dns.name.Name) -> TrustAnchor | None:
    """The closest anchor at or above `zone`."""
    covering = [anchor for anchor in anchors if zone.is_subdomain(anchor.name)]
    return max(covering, key=lambda anchor: len(anchor.name), default=None)


def names_below(anchor: dns.name.Name, zone: dns.name.Name) -> tuple[dns.name.Name, ...]:
    """Every name strictly below `anchor` down to `zone`, top-down."""
    return tuple(zone.split(depth)[1] for depth in range(len(anchor) + 1, len(zone) + 1))


# -- judgement ---------------------------------------------------------------------------


def judge_chain(evidence: ChainEvidence, now: float) -> ChainVerdict:
    """Walk from the anchor down to the zone, then verify the zone's records."""
    signed = evidence.zone_dnskey.rrset is not None
    expiry = earliest_expiry(evidence)
    try:
        status = _walk(evidence, now)
    except _Bogus as exc:
        return ChainVerdict(DnssecStatus.BOGUS, signed, expiry, str(exc))
    except _Indeterminate as exc:
        return ChainVerdict(DnssecStatus.INDETERMINATE, signed, expiry, str(exc))
    return ChainVerdict(status, signed, expiry, None)


def earliest_expiry(evidence: ChainEvidence) -> float | None:
    """When the first of the zone's own signatures (signer = the zone) expires."""
    lookups = [evidence.zone_dnskey, *evidence.records]
    expirations = [
        float(rrsig.expiration)
        for lookup in lookups
        if lookup.rrsigs is not None
        for rrsig in (cast(RRSIG, rd) for rd in lookup.rrsigs)
        if rrsig.signer == evidence.zone
    ]
    return min(expirations, default=None)


def _walk(evidence: ChainEvidence, now: float) -> DnssecStatus:
    if evidence.anchor is None or evidence.anchor_dnskey is None:
        raise _Indeterminate(f"no trust anchor covers {evidence.zone}")
    keys = _keys_from_anchor(evidence.anchor, evidence.anchor_dnskey, now)
    signer = evidence.anchor.name
    for delegation in evidence.delegations:
        if not _is_cut(delegation):
            continue
        ds = _answered(delegation.ds)
        if ds.rrset is None:
            return DnssecStatus.INSECURE  # an unsigned delegation: everything below is too
        _verify(ds, {signer: keys}, now)
        dnskey = _answered(delegation.dnskey)
        keys = _keys_from_ds(delegation.name, [cast(DS, rd) for rd in ds.rrset], dnskey, now)
        signer = delegation.name
    for record in evidence.records:
        if record.error is None and record.rrset is not None:
            _verify(record, {signer: keys}, now)
    return DnssecStatus.SECURE


def _is_cut(delegation: Delegation) -> bool:
    if delegation.soa is None:
        return True
    if delegation.ds.rrset is not None or delegation.dnskey.rrset is not None:
        return True
    return _answered(delegation.soa).rrset is not None


def _answered(lookup: Lookup) -> Lookup:
    if lookup.error is not None:
        raise _Indeterminate(f"{lookup.name} {lookup.rdtype.name}: {lookup.error}")
    return lookup


def _keys_from_anchor(anchor: TrustAnchor, lookup: Lookup, now: float) -> dns.rrset.RRset:
    dnskey = _answered(lookup)
    if dnskey.rrset is None:
        raise _Bogus(f"no DNSKEY at the trust anchor {anchor.name}")
    trusted = [
        key
        for key in (cast(DNSKEY, rd) for rd in dnskey.rrset)
        if key in anchor.dnskeys or _matches_any_ds(anchor.name, key, anchor.ds)
    ]
    if not trusted:
        raise _Bogus(f"no DNSKEY of {anchor.name} matches the trust anchor")
    _verify(dnskey, {anchor.name: _rdataset(trusted)}, now)
    return dnskey.rrset


def _keys_from_ds(
    name: dns.name.Name, ds_set: Sequence[DS], lookup: Lookup, now: float
) -> dns.rrset.RRset:
    if lookup.rrset is None:
        raise _Bogus(f"{name} has a DS in its parent but publishes no DNSKEY")
    matching = [
        key
        for key in (cast(DNSKEY, rd) for rd in lookup.rrset)
        if _matches_any_ds(name, key, ds_set)
    ]
    if not matching:
        raise _Bogus(f"no DNSKEY of {name} matches its DS records")
    _verify(lookup, {name: _rdataset(matching)}, now)
    return lookup.rrset


def _matches_any_ds(name: dns.name.Name, key: DNSKEY, ds_set: Iterable[DS]) -> bool:
    tag = dns.dnssec.key_id(key)
    for ds in ds_set:
        if ds.key_tag != tag or ds.algorithm != key.algorithm:
            continue
        try:
            digest = dns.dnssec.make_ds(name, key, dns.dnssectypes.DSDigest(ds.digest_type))
        except (ValueError, dns.exception.DNSException):
            continue  # a digest type this dnspython cannot compute
        if digest.digest == ds.digest:
            return True
    return False


def _verify(
    lookup: Lookup, keys: Mapping[dns.name.Name, dns.rdataset.Rdataset], now: float
) -> None:
    """One valid RRSIG by `keys` is enough; otherwise bogus, saying why each failed."""
    assert lookup.rrset is not None
    label = f"{lookup.rrset.name} {dns.rdatatype.to_text(lookup.rrset.rdtype)}"
    if lookup.rrsigs is None:
        raise _Bogus(f"{label}: no RRSIG")
    failures: list[str] = []
    for rdata in lookup.rrsigs:
        rrsig = cast(RRSIG, rdata)
        try:
            dns.dnssec.validate_rrsig(lookup.rrset, rrsig, dict(keys), now=now)
        except (dns.exception.ValidationFailure, dns.exception.UnsupportedAlgorithm) as exc:
            failures.append(f"key {rrsig.key_tag} of {rrsig.signer}: {exc}")
        else:
            return
    raise _Bogus(f"{label}: {'; '.join(failures)}")


def _rdataset(keys: Sequence[DNSKEY]) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_rdata_list(0, list(keys))
