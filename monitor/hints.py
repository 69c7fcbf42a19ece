"""Shared-infrastructure hints in words: the one place their sentence is composed.

A hint says that `count` of the `of` failing targets share every one of `values`, of one
kind: 'nameservers', 'address_prefix' or 'issuer' (monitor.outage.HintKind). Storage
keeps hints as the JSON list [{"kind", "values", "count", "of"}] (monitor/storage/schema.py).

Pure and standard-library only: the daemon (monitor.outage.InfraHint.text) and the
dashboard (dashboard.banner, from the stored JSON) both word hints here, without the
dashboard needing monitor.outage's types. One sentence, two lengths:

- full, for the record (incidents.hint_text, the API, log lines):
  'all 4 affected targets share name servers ns11.akshi.gov.al, ns12.akshi.gov.al'
- short, for the dashboard's wall, with name servers compacted:
  'all share name servers ns11/ns12.akshi.gov.al'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

# What each kind is called, for one value and for several.
HINT_LABELS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "nameservers": ("name server", "name servers"),
        "address_prefix": ("address prefix", "address prefixes"),
        "issuer": ("certificate issuer", "certificate issuers"),
    }
)


def compact_hostnames(names: Sequence[str]) -> str:
    """'ns11.akshi.gov.al', 'ns12.akshi.gov.al' -> 'ns11/ns12.akshi.gov.al'.

    Names that share no domain of at least two labels stay a comma-separated list.
    """
    cleaned = sorted({name.strip().rstrip(".").lower() for name in names if name.strip()})
    if len(cleaned) < 2:
        return ", ".join(cleaned)
    split = [name.split(".") for name in cleaned]
    shared = 0
    while all(len(labels) > shared + 1 for labels in split) and (
        len({labels[-1 - shared] for labels in split}) == 1
    ):
        shared += 1
    if shared < 2:
        return ", ".join(cleaned)
    heads = [".".join(labels[:-shared]) for labels in split]
    return "/".join(heads) + "." + ".".join(split[0][-shared:])


def hint_who(count: int | None, of: int | None, *, short: bool = False) -> str:
    """'all 4 affected targets share', '3 of 4 affected targets share'; short: 'all share',
    '3 of 4 share'. A count of None means all of them."""
    if count is not None and count != of:
        return f"{count} of {of} share" if short else f"{count} of {of} affected targets share"
    return "all share" if short else f"all {of} affected targets share"


def hint_what(kind: str, values: Sequence[str], *, short: bool = False) -> str:
    """'name servers ns11.akshi.gov.al, ns12.akshi.gov.al', 'address prefix 192.0.2.0/24';
    short compacts name servers ('name servers ns11/ns12.akshi.gov.al'). A kind this
    version does not know is named by its words."""
    words = kind.replace("_", " ")
    singular, plural = HINT_LABELS.get(kind, (words, words))
    label = plural if len(values) > 1 else singular
    if short and kind == "nameservers":
        return f"{label} {compact_hostnames(values)}"
    return f"{label} {', '.join(values)}"


def hint_sentence(
    kind: str,
    values: Sequence[str],
    count: int | None = None,
    of: int | None = None,
    *,
    short: bool = False,
) -> str:
    """One hint as a sentence fragment: who shares what (see the module's two lengths)."""
    return f"{hint_who(count, of, short=short)} {hint_what(kind, values, short=short)}"
