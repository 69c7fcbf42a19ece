"""Pure functions that turn the monitor's status into the sentences operators read first.

No Streamlit, no I/O, no clock: `now` is an argument, so every sentence is testable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from monitor.countries import country_name
from monitor.hints import hint_sentence, hint_what, hint_who
from probes.results import Reason

# One phrase per failure reason (the closed enum in probes/results.py), in the plural because a
# banner speaks about many services at once.
REASON_PHRASES: Mapping[Reason, str] = {
    Reason.DNS_NXDOMAIN: "domain names not found (NXDOMAIN)",
    Reason.DNS_SERVFAIL: "DNS server failures (SERVFAIL)",
    Reason.DNS_TIMEOUT: "DNS timeouts",
    Reason.DNS_ERROR: "DNS errors",
    Reason.DNSSEC_BOGUS: "bogus DNSSEC signatures",
    Reason.CONNECT_REFUSED: "connections refused",
    Reason.CONNECT_TIMEOUT: "connection timeouts",
    Reason.NETWORK_UNREACHABLE: "network unreachable",
    Reason.TLS_HANDSHAKE: "TLS handshake failures",
    Reason.TLS_CERT_EXPIRED: "expired certificates",
    Reason.TLS_CERT_UNTRUSTED: "untrusted certificates",
    Reason.TLS_HOSTNAME_MISMATCH: "certificates for the wrong name",
    Reason.HTTP_TIMEOUT: "HTTP timeouts",
    Reason.HTTP_STATUS: "HTTP error statuses",
    Reason.HTTP_CONTENT: "unexpected page content",
    Reason.HTTP_TOO_LARGE: "oversized responses",
    Reason.HTTP_REDIRECT_LOOP: "redirect loops",
    Reason.PROTOCOL_ERROR: "protocol errors",
}


class Severity(StrEnum):
    """How a banner is drawn: the app maps these to st.error / st.warning / st.success."""

    OFFLINE = "offline"  # the monitor itself cannot see the internet (or has stopped)
    REGION_OUTAGE = "region_outage"  # the whole region is dark: louder than any country
    OUTAGE = "outage"  # a country is dark
    DEGRADED = "degraded"  # some services down, no correlated outage
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Banner:
    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class OutageFacts:
    """One open outage, as the banner needs it."""

    scope: str  # "country" or "region"
    country: str | None  # ISO code; None for the region
    down: int  # services of the scope that are down now
    total: int  # services of the scope
    since: datetime  # when the incident started (aware, UTC)
    dominant_reason: str | None = None
    hint: str | None = None  # already a sentence fragment, e.g. from `hint_text`
    countries: tuple[str, ...] = ()  # for a region outage: the countries in outage


@dataclass(frozen=True, slots=True)
class VantageFacts:
    """Is the monitor itself online, and is its data fresh?"""

    up: bool
    since: datetime | None = None  # when the vantage went down (None: unknown)
    canaries_failing: int = 0
    canaries_total: int = 0
    last_update: datetime | None = None  # newest data point the dashboard sees


def reason_phrase(reason: str | None) -> str:
    if not reason:
        return "reason unknown"
    try:
        return REASON_PHRASES[Reason(reason)]
    except ValueError:  # a reason this version does not know (a newer daemon's)
        return reason.replace("_", " ")


@dataclass(frozen=True, slots=True)
class SharedHint:
    """What `count` of the `of` failing targets share (None, None: all of them): one item
    of an incident's stored hint list, worded by monitor.hints in its short form."""

    kind: str  # monitor.outage.HintKind values: nameservers, address_prefix, issuer
    values: tuple[str, ...]
    count: int | None = None
    of: int | None = None

    @property
    def who(self) -> str:
        """'all share', '3 of 4 share'."""
        return hint_who(self.count, self.of, short=True)

    @property
    def what(self) -> str:
        """'name servers ns11/ns12.akshi.gov.al', 'address prefix 192.0.2.0/24', ..."""
        return hint_what(self.kind, self.values, short=True)


def hints_text(hints: Sequence[SharedHint]) -> str | None:
    """'all share name servers ns11/ns12.akshi.gov.al and address prefix 192.0.2.0/24'."""
    parts: list[str] = []
    groups: dict[str, list[str]] = {}
    for hint in hints:
        groups.setdefault(hint.who, []).append(hint.what)
    for who, whats in groups.items():
        listed = whats[0] if len(whats) == 1 else ", ".join(whats[:-1]) + " and " + whats[-1]
        parts.append(f"{who} {listed}")
    return "; ".join(parts) or None


def hint_text(
    kind: str, values: Sequence[str], count: int | None = None, of: int | None = None
) -> str:
    """One shared-infrastructure hint as a sentence fragment: 'all share name servers ...'."""
    return hint_sentence(kind, values, count, of, short=True)


def format_clock(moment: datetime, now: datetime) -> str:
    """'14:02 UTC' today, '15 Jul 14:02 UTC' on another day, with the year when it differs."""
    moment, now = moment.astimezone(UTC), now.astimezone(UTC)
    if moment.date() == now.date():
        return moment.strftime("%H:%M UTC")
    if moment.year == now.year:
        return moment.strftime("%d %b %H:%M UTC")
    return moment.strftime("%d %b %Y %H:%M UTC")


def format_duration(delta: timedelta) -> str:
    """A short human duration: '45 s', '12 min', '3 h 05 min', '2 d 4 h'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def outage_banner(outage: OutageFacts, now: datetime) -> Banner:
    """'Albania: 21 of 22 services down since 14:02 UTC — connection timeouts; all share ...'."""
    if outage.scope == "region":
        where = "Region-wide outage"
        if outage.countries:
            where += " (" + ", ".join(country_name(c) for c in outage.countries) + ")"
    else:
        where = country_name(outage.country or "?")
    text = (
        f"{where}: {outage.down} of {outage.total} services down "
        f"since {format_clock(outage.since, now)} — {reason_phrase(outage.dominant_reason)}"
    )
    if outage.hint:
        text += f"; {outage.hint}"
    severity = Severity.REGION_OUTAGE if outage.scope == "region" else Severity.OUTAGE
    return Banner(severity, text)


def vantage_banner(vantage: VantageFacts, now: datetime, stale_after: timedelta) -> Banner | None:
    """The monitor-is-offline banner, or None while the monitor is online and its data fresh."""
    if not vantage.up:
        text = "This monitor is offline — the region's state is unknown"
        details = []
        if vantage.since is not None:
            details.append(f"since {format_clock(vantage.since, now)}")
        if vantage.canaries_total:
            details.append(
                f"{vantage.canaries_failing} of {vantage.canaries_total} control targets failing"
            )
        elif vantage.canaries_failing:
            plural = "s" if vantage.canaries_failing != 1 else ""
            details.append(f"{vantage.canaries_failing} control target{plural} failing")
        if details:
            text += " (" + "; ".join(details) + ")"
        return Banner(Severity.OFFLINE, text)
    if vantage.last_update is None:
        return Banner(Severity.OFFLINE, "No data yet — the monitor has not stored a probe result")
    if now - vantage.last_update > stale_after:
        return Banner(
            Severity.OFFLINE,
            f"No data since {format_clock(vantage.last_update, now)} "
            f"({format_duration(now - vantage.last_update)} ago) — "
            "is the monitor running? The region's state is unknown",
        )
    return None


def status_banners(
    vantage: VantageFacts,
    outages: Sequence[OutageFacts],
    counts: Mapping[str, int],
    now: datetime,
    stale_after: timedelta,
) -> list[Banner]:
    """Every banner for the overview, most severe first.

    `counts` has the number of targets per state ('up', 'down', 'unknown', 'maintenance'). A monitor
    that is offline (or silent) hides outage banners: the targets' states are unknown
    then, and blaming a country would be a false alarm.
    """
    offline = vantage_banner(vantage, now, stale_after)
    if offline is not None:
        return [offline]
    ordered = sorted(outages, key=lambda o: (o.scope != "region", o.since, o.country or ""))
    banners = [outage_banner(outage, now) for outage in ordered]
    if banners:
        return banners
    up, down, unknown = counts.get("up", 0), counts.get("down", 0), counts.get("unknown", 0)
    maintenance = counts.get("maintenance", 0)
    total = up + down + unknown + maintenance
    if total == 0:
        return [Banner(Severity.OFFLINE, "No targets yet — the monitor has not stored any")]
    in_maintenance = f", {maintenance} in maintenance" if maintenance else ""
    if up + down == 0 and unknown:
        return [
            Banner(
                Severity.OFFLINE,
                f"The state of {'all ' if not maintenance else ''}{unknown} services is unknown"
                f" — no confirmed probe result yet{in_maintenance}",
            )
        ]
    if down:
        return [
            Banner(
                Severity.DEGRADED,
                f"{down} of {total} services down — no country outage{in_maintenance}",
            )
        ]
    if unknown:
        return [
            Banner(
                Severity.OK,
                f"{up} of {total} services up, {unknown} not yet known{in_maintenance}",
            )
        ]
    if maintenance:
        return [Banner(Severity.OK, f"{up} of {total} services up{in_maintenance}")]
    return [Banner(Severity.OK, f"All {total} services up")]


APP_NAME = "govwatch"


def tab_title(
    vantage: VantageFacts, outages: Sequence[OutageFacts], now: datetime, stale_after: timedelta
) -> str:
    """The browser tab's title: what is wrong, readable in a row of tabs.

    'OFFLINE — govwatch' while the monitor is offline or silent (as the banners, it hides
    outages then), 'REGION OUTAGE — govwatch', 'OUTAGE: Albania, Serbia — govwatch', or
    just 'govwatch'.
    """
    silent = (
        vantage.last_update is not None and vantage_banner(vantage, now, stale_after) is not None
    )
    if not vantage.up or silent:
        return f"OFFLINE — {APP_NAME}"
    if any(outage.scope == "region" for outage in outages):
        return f"REGION OUTAGE — {APP_NAME}"
    names = sorted({country_name(o.country) for o in outages if o.scope == "country" and o.country})
    if names:
        return f"OUTAGE: {', '.join(names)} — {APP_NAME}"
    return APP_NAME
