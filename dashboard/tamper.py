"""Tamper signals in words: what each kind means and its evidence as readable lines.

A signal's evidence (monitor.tamper, one dict per kind) is JSON from the history, and
much of it was written by whoever controls the site: a defacer chose the new title and
the excerpt. Everything here returns plain strings; the pages escape them
(dashboard.text.as_text) like every other string from the network. Values of an
unexpected type are shown as they are, never trusted to be what the key promises.

No Streamlit here, so the wording is testable without a page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.storage import AckOutcome, ack_outcome
from monitor.tamper import TamperKind

# The kinds as the history stores them (its `kind` column is text).
DEFACEMENT = TamperKind.DEFACEMENT.value
DNS_CHANGE = TamperKind.DNS_CHANGE.value
DNSSEC_DOWNGRADE = TamperKind.DNSSEC_DOWNGRADE.value
CERT_CHANGE = TamperKind.CERT_CHANGE.value

KIND_TITLES: Mapping[str, str] = {
    DEFACEMENT: "Page changed (defacement)",
    DNS_CHANGE: "Name servers or networks changed (dns_change)",
    DNSSEC_DOWNGRADE: "DNSSEC lost (dnssec_downgrade)",
    CERT_CHANGE: "Certificate changed (cert_change)",
}
ARROW = " → "
NONE_SHOWN = "—"

Line = tuple[str, str]  # (label: ours, text: untrusted)
# After Acknowledge, how long the page waits for the daemon's outcome (it polls the queue
# every 2 s), and how often it looks.
ACK_WAIT_S = 5.0
ACK_POLL_S = 0.25


def kind_title(kind: str) -> str:
    return KIND_TITLES.get(kind, kind)


def _text(value: Any) -> str:
    if value is None or value == "":
        return NONE_SHOWN
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value) or NONE_SHOWN
    if isinstance(value, Mapping):
        return ", ".join(f"{_text(k)} {_text(v)}" for k, v in value.items()) or NONE_SHOWN
    if isinstance(value, int):
        return str(value)  # serials and sizes: every digit
    if isinstance(value, float):
        return f"{value:.12g}"
    return json.dumps(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def _date(value: Any) -> str:
    epoch = _number(value)
    if epoch is None:
        return _text(value)
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%d %b %Y")
    except (OverflowError, OSError, ValueError):
        return _text(value)


def _change(old: Any, new: Any) -> str:
    """'old → new', or 'old (unchanged)' when both are the same."""
    if old == new:
        return f"{_text(old)} (unchanged)"
    return f"{_text(old)}{ARROW}{_text(new)}"


def _quoted_change(old: Any, new: Any) -> str:
    """Titles: quoted, so an empty or blank title is visible as such."""
    return f"“{_text(old) if old else ''}”{ARROW}“{_text(new) if new else ''}”"


def _defacement(e: Mapping[str, Any]) -> list[Line]:
    lines: list[Line] = []
    status = e.get("status_code")
    lines.append(("page", _text(e.get("url")) + (f" (HTTP {_text(status)})" if status else "")))
    lines.append(("title", _quoted_change(e.get("old_title"), e.get("new_title"))))
    similarity, threshold = _number(e.get("similarity")), _number(e.get("threshold"))
    if similarity is not None:
        fires = f" (fires below {threshold:.0%})" if threshold is not None else ""
        lines.append(("text similarity", f"{similarity:.0%} like the baseline{fires}"))
    if "old_text_chars" in e or "new_text_chars" in e:
        lines.append(
            (
                "text length",
                f"{_change(e.get('old_text_chars'), e.get('new_text_chars'))} characters",
            )
        )
    if e.get("new_markers"):
        lines.append(("defacement phrases", _text(e.get("new_markers"))))
    if e.get("new_script_hosts"):
        lines.append(("scripts from new hosts", _text(e.get("new_script_hosts"))))
    if e.get("new_link_hosts"):
        lines.append(("links to new hosts", _text(e.get("new_link_hosts"))))
    before, now = e.get("content_check_before"), e.get("content_check_now")
    if isinstance(before, bool) or isinstance(now, bool):
        lines.append(("content check", f"{_passed(before)}{ARROW}{_passed(now)}"))
    lines.append(("text before", _text(e.get("old_excerpt"))))
    lines.append(("text now", _text(e.get("new_excerpt"))))
    return lines


def _passed(value: Any) -> str:
    """expect_text / fail_if_body_matches passed or not; anything else is unknown."""
    return (
        {True: "passed", False: "failed"}.get(value, NONE_SHOWN)
        if isinstance(value, bool)
        else NONE_SHOWN
    )


def _dns_change(e: Mapping[str, Any]) -> list[Line]:
    lines: list[Line] = [
        ("zone", _text(e.get("zone"))),
        ("name servers", _change(e.get("old_nameservers"), e.get("new_nameservers"))),
    ]
    if e.get("new_prefixes"):
        lines.append(("networks never seen before", _text(e.get("new_prefixes"))))
    lines.append(("addresses now", _text(e.get("addresses"))))
    lines.append(("networks known", _text(e.get("known_prefixes"))))
    serials, streak = e.get("serials"), _number(e.get("serial_split_probes"))
    if serials:
        split = f" (disagreeing for {streak:.0f} probes)" if streak else ""
        lines.append(("SOA serials", _text(serials) + split))
    return lines


def _dnssec_downgrade(e: Mapping[str, Any]) -> list[Line]:
    lines: list[Line] = [
        ("zone", _text(e.get("zone"))),
        ("DNSSEC", _change(e.get("old_status"), e.get("new_status"))),
        ("signed", _text(e.get("signed"))),
    ]
    if e.get("error"):
        lines.append(("validation error", _text(e.get("error"))))
    return lines


def _cert_change(e: Mapping[str, Any]) -> list[Line]:
    lines: list[Line] = [
        ("host", _text(e.get("host"))),
        ("issuer", _change(e.get("old_issuer"), e.get("new_issuer"))),
        ("new issuer in full", _text(e.get("new_issuer_dn"))),
    ]
    old_keys, new_key = e.get("old_keys"), e.get("new_key")
    known = isinstance(old_keys, list) and new_key in old_keys
    key = "same key" if known else f"new key {_text(new_key)} (was {_text(old_keys)})"
    lines.append(("public key", key))
    days_left, window = _number(e.get("old_days_left")), _number(e.get("renewal_window_days"))
    old_expiry = f"expires {_date(e.get('old_not_after'))}"
    if days_left is not None:
        old_expiry += f", {days_left:.0f} days left"
        if window is not None:
            old_expiry += f" (renewals come in the last {window:.0f})"
    lines.append(("old certificate", old_expiry))
    lines.append(
        (
            "new certificate",
            f"{_text(e.get('new_subject'))}, expires {_date(e.get('new_not_after'))}",
        )
    )
    covers = e.get("covers_host")
    names = _text(e.get("new_names"))
    lines.append(("names", names if covers is not False else f"{names} (not the host's name)"))
    return lines


_LINES: Mapping[str, Callable[[Mapping[str, Any]], list[Line]]] = {
    DEFACEMENT: _defacement,
    DNS_CHANGE: _dns_change,
    DNSSEC_DOWNGRADE: _dnssec_downgrade,
    CERT_CHANGE: _cert_change,
}


def evidence_lines(kind: str, evidence: Mapping[str, Any]) -> list[Line]:
    """The evidence of one signal as (label, text) lines, old against new; for a kind this
    dashboard does not know, every field as it came."""
    if not isinstance(evidence, Mapping) or not evidence:
        return []
    describe = _LINES.get(kind)
    if describe is None:
        return [(str(key), _text(value)) for key, value in evidence.items()]
    return describe(evidence)


def ack_result(ack_id: int, outcome: AckOutcome | None, target: str) -> str:
    """What the operator is told after pressing Acknowledge (plain text, to be escaped)."""
    if outcome is None:
        return (
            f"Acknowledgement #{ack_id} queued: the daemon applies it within a few seconds "
            "(or when it next starts). The signal clears then."
        )
    if outcome.outcome == "cleared":
        return (
            f"Acknowledgement #{ack_id} applied: the signal is cleared and what {target} "
            "serves now is its new baseline."
        )
    if outcome.outcome == "relearning":
        return (
            f"Acknowledgement #{ack_id} applied: no signal was raised any more (acknowledged "
            "already?), so the baseline is learned afresh."
        )
    return f"Acknowledgement #{ack_id}: the daemon says {outcome.outcome or 'nothing'}."


def wait_for_outcome(
    path: Path | str, ack_id: int, wait_s: float | None = None
) -> AckOutcome | None:
    """The daemon's outcome of acknowledgement `ack_id`, if it arrives within `wait_s`
    (ACK_WAIT_S); None while it is still queued. StorageError when the history cannot be read."""
    deadline = time.monotonic() + (ACK_WAIT_S if wait_s is None else wait_s)
    while True:
        outcome = ack_outcome(path, ack_id)
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        time.sleep(ACK_POLL_S)
