"""Shared-infrastructure hints in words: one sentence, a full and a short length."""

from __future__ import annotations

import pytest

from monitor.hints import compact_hostnames, hint_sentence, hint_what, hint_who
from monitor.outage import HintKind, InfraHint


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["ns11.akshi.gov.al", "ns12.akshi.gov.al"], "ns11/ns12.akshi.gov.al"),
        (["b.ns.example.test.", "a.ns.example.test"], "a/b.ns.example.test"),
        (["ns1.one.test", "ns1.two.test"], "ns1.one.test, ns1.two.test"),  # only the TLD shared
        (["ns.only.test"], "ns.only.test"),
        (["x.test", "x.test"], "x.test"),
    ],
)
def test_compact_hostnames(names: list[str], expected: str) -> None:
    assert compact_hostnames(names) == expected


NAMESERVERS = ("ns11.akshi.gov.al", "ns12.akshi.gov.al")


@pytest.mark.parametrize(
    ("short", "expected"),
    [
        (False, "all 4 affected targets share name servers ns11.akshi.gov.al, ns12.akshi.gov.al"),
        (True, "all share name servers ns11/ns12.akshi.gov.al"),
    ],
)
def test_one_sentence_two_lengths(short: bool, expected: str) -> None:
    assert hint_sentence("nameservers", NAMESERVERS, 4, 4, short=short) == expected


def test_the_record_is_what_infra_hint_says() -> None:
    hint = InfraHint(HintKind.ADDRESS_PREFIX, ("127.0.2.0/24",), 3, 5)
    assert hint.text == hint_sentence("address_prefix", ("127.0.2.0/24",), 3, 5)
    assert hint.text == "3 of 5 affected targets share address prefix 127.0.2.0/24"


def test_parts() -> None:
    assert hint_who(3, 4) == "3 of 4 affected targets share"
    assert hint_who(None, None, short=True) == "all share"
    assert hint_who(2, 7, short=True) == "2 of 7 share"
    assert hint_what("issuer", ["CN=R3", "CN=R4"]) == "certificate issuers CN=R3, CN=R4"
    assert hint_what("address_prefix", ["192.0.2.0/24"], short=True) == (
        "address prefix 192.0.2.0/24"
    )
    # Only the short length compacts name servers.
    assert hint_what("nameservers", NAMESERVERS) == (
        "name servers ns11.akshi.gov.al, ns12.akshi.gov.al"
    )
    # A kind a later version adds is named by its words.
    assert hint_what("upstream_network", ["AS1", "AS2"], short=True) == "upstream network AS1, AS2"
