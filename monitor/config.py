"""targets.toml -> frozen, validated configuration.

Every problem is collected and reported at once as ``FILE:LINE: message``.
tomllib gives no positions for values, so `_locate_keys` scans the file's
table headers and keys to find the line of each one. `Checker` does the
collecting; other TOML files with the same error style (the simulator's
scenarios) validate with it too.

The file is hostile input as much as a typo: it is read only if it is a regular file
of at most 10 MiB, nesting and dotted keys are bounded before tomllib sees them, every
duration and number has a range, names and URLs are checked for what they will be
shown as (metric labels, the API, the dashboard), and values echoed in messages are
shortened and escaped. Whatever the file holds, `load_config` raises only ConfigError.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import reprlib
import ssl
import stat
import sys
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import dns.exception

from monitor.countries import ISO_ALPHA2
from monitor.maintenance import WEEK_S
from monitor.settings import (
    EVIDENCE,
    SECTORS,
    Canary,
    Config,
    MaintenanceWindow,
    MonitorSettings,
    OutageSettings,
    Target,
)
from probes.certs import to_ascii_hostname
from probes.context import make_ssl_context
from probes.dnssec import load_trust_anchors
from probes.settings import Nameserver, is_ip_literal

DEFAULT_TARGETS = Path("targets.toml")
MAX_CONFIG_BYTES = 10 * 1024 * 1024  # the shipped catalogue (170 targets) is 23 KiB

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def shown(text: str, *, quoted: bool = True, limit: int = 80) -> str:
    """`text` for a message: shortened, every control or invisible character escaped (so a
    hostile file can neither flood nor drive the operator's terminal), in double quotes."""
    short = text if len(text) <= limit else text[: limit - 3] + "..."
    escaped = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in short)
    return f'"{escaped}"' if quoted else escaped


def parse_duration(text: str) -> float:
    """ "30s", "5m", "1h", "7d", "1m30s", "250ms" -> seconds. Raises ValueError otherwise."""
    seconds = _seconds(text)
    if not math.isfinite(seconds):
        raise ValueError(f"{shown(text)} is too long to be a duration")
    return seconds


def _seconds(text: str) -> float:
    """parse_duration, except that hundreds of digits give float('inf') (a range refuses it)."""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'{shown(text)} is not a duration (use e.g. "30s", "5m", "1h")')
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{shown(text)} must be longer than zero")
    return seconds


def parse_nameserver(text: str) -> Nameserver:
    """'IP' or 'IP:port' (IPv6 as '[::1]:53' or bare '::1') -> Nameserver."""
    host, port = text, 53
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\](?::([0-9]{1,5}))?", text)
        if not match:
            raise ValueError(f"{shown(text)} is not IP[:port]")
        host, port = match[1], int(match[2] or 53)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not re.fullmatch(r"[0-9]{1,5}", port_text):
            raise ValueError(f"{shown(text)} is not IP[:port]")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f'{shown(text)} is neither "system" nor IP[:port]') from None
    if not 0 < port < 65536:
        raise ValueError(f"{shown(text)}: port must be 1-65535")
    return Nameserver(host, port)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int  # 0: the problem has no line (the file cannot be read at all)
    message: str

    def __str__(self) -> str:
        if self.line == 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(map(str, issues)))
        self.issues = issues


# --- locating keys -----------------------------------------------------------

# Where a value sits in a document: ("monitor",) is the [monitor] table, ("target", 2)
# the third [[target]], ("target", 2, "url") its url key.
KeyPath = tuple[str | int, ...]
# Linear on any line: a lazy name followed by optional spaces took minutes on a long one.
_HEADER = re.compile(r"\s*(\[\[?)([^\[\]#=]*)\]\]?\s*(#.*)?$")
_KEY = re.compile(r"\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*=")


def _locate_keys(text: str) -> dict[KeyPath, int]:
    """Line numbers of tables, array-of-table entries and their keys.

    ("monitor",) is the [monitor] header, ("target", 2) the third [[target]],
    ("target", 2, "url") its url key. Multi-line strings are skipped.
    """
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_counts: dict[str, int] = {}
    in_multiline: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if raw.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            name = header[2].strip().strip("\"'")
            if header[1] == "[[":
                index = array_counts.get(name, 0)
                array_counts[name] = index + 1
                table = (name, index)
            else:
                table = (name,)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            lines.setdefault((*table, key[1].strip("\"'")), number)
            for quote in ('"""', "'''"):
                if raw.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


# --- validation --------------------------------------------------------------


class Checker:
    """Validates one TOML document table by table, collecting every problem as a
    `ConfigIssue` (FILE:LINE: message) instead of stopping at the first.

    `path` and `text` are the file and its contents (the text gives the lines). The
    helpers read a table found at `key` (a KeyPath) and name it `label` in messages;
    a bad value is recorded in `issues` and read as None. Raise `ConfigError(issues)`
    (or a subclass) once the whole document has been read.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _locate_keys(text)
        self.issues: list[ConfigIssue] = []

    def line_of(self, *key: str | int) -> int:
        """The line of `key`, or of its closest enclosing table that has one (else 1)."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return 1

    def error(self, key: KeyPath, message: str) -> None:
        """Record `message` at the line of `key`."""
        self.issues.append(ConfigIssue(str(self.path), self.line_of(*key), message))

    def known_keys(self, table: Mapping[str, Any], key: KeyPath, label: str, allowed: Any) -> None:
        """Report every key of `table` not in `allowed`, with a "did you mean" for near misses."""
        for name in table:
            if name not in allowed:
                close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
                if key:
                    hint = f' (did you mean "{close[0]}"?)' if close else ""
                    self.error(
                        (*key, name), f"{label}.{shown(name, quoted=False)}: unknown key{hint}"
                    )
                else:
                    hint = f" (did you mean [{close[0]}]?)" if close else ""
                    self.error(
                        (name,),
                        f"unknown table or key {reprlib.repr(name)} at the top level{hint}",
                    )

    def value(
        self,
        table: Mapping[str, Any],
        key: KeyPath,
        label: str,
        name: str,
        kind: type | tuple[type, ...],
        *,
        required: bool = False,
    ) -> Any:
        """`table[name]` if it has type `kind` (bool is not an int), else None and an issue;
        None when absent (an issue too if `required`)."""
        if name not in table:
            if required:
                self.error(key, f"{label}: missing required key {name!r}")
            return None
        value = table[name]
        # bool is an int in Python; TOML keeps them apart, so do we.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            value_ok = False
        else:
            value_ok = isinstance(value, kind)
        if not value_ok:
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            self.error(
                (*key, name), f"{label}.{name}: expected {expected}, got {reprlib.repr(value)}"
            )
            return None
        return value

    def converted(
        self,
        table: Mapping[str, Any],
        key: KeyPath,
        label: str,
        name: str,
        convert: Callable[[Any], Any],
    ) -> Any:
        """`convert(table[name])`, or None when absent; a ValueError or TypeError it raises
        becomes an issue "label.name: <its message>"."""
        if name not in table:
            return None
        try:
            return convert(table[name])
        except (ValueError, TypeError) as exc:
            self.error((*key, name), f"{label}.{name}: {exc}")
            return None


# --- values ------------------------------------------------------------------

# Each duration key's range: wide enough for any real use, narrow enough that no value
# stops the monitor (a 400-digit interval was infinite: nothing was ever probed).
DURATION_RANGES: dict[str, tuple[str, str]] = {
    "interval": ("1s", "1d"),
    "timeout": ("100ms", "5m"),
    "tls_interval": ("1s", "1d"),
    "reprobe_delay": ("10ms", "10m"),
    "overload_lag": ("10ms", "1m"),
    "impairment_hold": ("1s", "1h"),
}
# Each whole-number key's range, likewise.
NUMBER_RANGES: dict[str, tuple[int, int]] = {
    "concurrency": (1, 10_000),
    "max_body_bytes": (1, 64 * 1024 * 1024),
    "max_redirects": (0, 100),
    "authoritative_port": (1, 65_535),
    "confirm_reprobes": (0, 10),
    "country_min_targets": (1, 1_000),
    "region_min_countries": (1, 1_000),
}
NAME_MAX_CHARS = 200  # a name is a metric label, a log field and a dashboard cell
EXPECT_TEXT_MAX_CHARS = 1_000
URL_MAX_CHARS = 2_048
MAX_RESOLVERS = 16
_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def _duration(name: str) -> Callable[[Any], float]:
    """The converter for duration key `name`, held to its DURATION_RANGES."""
    shortest, longest = DURATION_RANGES[name]

    def convert(value: Any) -> float:
        if not isinstance(value, str):
            raise ValueError(f'expected a duration string like "30s", got {reprlib.repr(value)}')
        seconds = _seconds(value)
        if not _seconds(shortest) <= seconds <= _seconds(longest):
            raise ValueError(f"{shown(value)} is out of range: from {shortest} to {longest}")
        return seconds

    return convert


def _whole_number(name: str) -> Callable[[Any], int]:
    """The converter for whole-number key `name`, held to its NUMBER_RANGES."""
    low, high = NUMBER_RANGES[name]

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(
                f"expected a whole number from {low} to {high}, got {reprlib.repr(value)}"
            )
        return value

    return convert


def _ratio(value: Any) -> float:
    # NaN fails every comparison, so `not 0 < value <= 1` refuses it too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"expected a number in (0, 1], got {reprlib.repr(value)}")
    return float(value)


def _text(value: Any, max_chars: int) -> str:
    """Free text that will be shown: not blank, printable only (no line breaks, tabs, NULs,
    escapes or invisible characters), at most `max_chars` long."""
    if not isinstance(value, str):
        raise ValueError(f"expected str, got {reprlib.repr(value)}")
    if not value.strip():
        raise ValueError("must not be empty or only spaces")
    for index, char in enumerate(value):
        if not char.isprintable():
            raise ValueError(
                f"contains a control or invisible character (U+{ord(char):04X}) "
                f"at character {index + 1}"
            )
    if len(value) > max_chars:
        raise ValueError(f"is {len(value)} characters long; at most {max_chars}")
    return value


def _name(value: Any) -> str:
    name = _text(value, NAME_MAX_CHARS)
    if name != name.strip():
        raise ValueError(f"{shown(name)} must not begin or end with spaces")
    return name


def _expect_text(value: Any) -> str:
    return _text(value, EXPECT_TEXT_MAX_CHARS)


def _same_name(name: str) -> str:
    """What two names must not share: "e-Albania" and "E-ALBANIA  " are one target to a reader."""
    return " ".join(name.split()).casefold()


def _without_credentials(url: str) -> str:
    """`url` with any "user:password@" replaced by "***@", safe to show (found as urlsplit
    finds it: the part of the authority before its last "@")."""
    authority = url.find("//")
    if authority < 0:
        return url
    authority += 2
    ends = [i for i in (url.find(c, authority) for c in "/?#") if i >= 0]
    at = url.rfind("@", authority, min(ends, default=len(url)))
    return url if at < 0 else url[:authority] + "***" + url[at:]


def _host_problem(host: str) -> str | None:
    """Why `host` (from a URL, lower case) is no IP address or DNS name, or None."""
    if is_ip_literal(host):
        return None
    ascii_host = to_ascii_hostname(host)
    labels = ascii_host.split(".") if ascii_host else []
    if not labels or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"host {shown(host)} is not a valid host name"
    for label in labels:
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                return f"host {shown(host)} has an invalid internationalised label {shown(label)}"
    return None


def _url(value: Any) -> str:
    """An http(s) URL with a valid host and port and no credentials, returned with its
    scheme and host in lower case: they are case-insensitive, and "HTTPS://" must get
    its TLS probe like "https://"."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {reprlib.repr(value)}")
    safe = shown(_without_credentials(value))
    if len(value) > URL_MAX_CHARS:
        raise ValueError(f"is {len(value)} characters long; at most {URL_MAX_CHARS}")
    for index, char in enumerate(value):
        if char.isspace() or not char.isprintable():
            raise ValueError(
                f"{safe} contains a space or control character (U+{ord(char):04X}) at "
                f"character {index + 1}; percent-encode it"
            )
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"{safe} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):  # urlsplit lower-cases the scheme
        raise ValueError(f"{safe} is not an http(s) URL")
    if "@" in parts.netloc:
        raise ValueError(
            "credentials in URLs are not supported (they would be shown in the API, the "
            f'history and the dashboard); remove the "user:password@" from {safe}'
        )
    if not parts.hostname:
        raise ValueError(f"{safe} has no host")
    problem = _host_problem(parts.hostname)
    if problem:
        raise ValueError(f"{safe}: {problem}")
    if not _port_is_valid(parts):
        raise ValueError(f"{safe} has an invalid port")
    return urlunsplit(parts._replace(netloc=parts.netloc.lower()))


def _port_is_valid(parts: SplitResult) -> bool:
    try:
        return parts.port != 0
    except ValueError:  # not a number, or over 65535
        return False


def _resolvers(value: Any) -> tuple[Nameserver, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(
            'expected a non-empty list of strings, e.g. ["system"] or ["127.0.0.1:53"]'
        )
    if "system" in value:
        if len(value) > 1:
            raise ValueError('"system" cannot be combined with explicit resolvers')
        return ()
    if len(value) > MAX_RESOLVERS:
        raise ValueError(f"{len(value)} resolvers; at most {MAX_RESOLVERS}")
    nameservers, problems = [], []
    for text in value:
        try:
            nameservers.append(parse_nameserver(text))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(nameservers)


def _expect_status(value: Any) -> frozenset[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in value
        )
    ):
        raise ValueError(
            f"expected a non-empty list of HTTP status codes (100-599), got {reprlib.repr(value)}"
        )
    return frozenset(value)


MAX_BODY_PHRASES = 32
BODY_PHRASE_MAX_CHARS = 200


def _fail_if_body_matches(value: Any) -> tuple[str, ...]:
    """Phrases that fail the HTTP probe: plain text, matched case-insensitively."""
    if not isinstance(value, list) or not value:
        raise ValueError(
            f'expected a non-empty list of phrases, e.g. ["hacked by"], got {reprlib.repr(value)}'
        )
    if len(value) > MAX_BODY_PHRASES:
        raise ValueError(f"has {len(value)} phrases; at most {MAX_BODY_PHRASES}")
    phrases = []
    for index, phrase in enumerate(value):
        try:
            phrases.append(_text(phrase, BODY_PHRASE_MAX_CHARS).strip().casefold())
        except ValueError as exc:
            raise ValueError(f"phrase {index + 1} {exc}") from None
    return tuple(dict.fromkeys(phrases))


def _similarity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(
            f"expected a number from 0 to 1 (the share of the page's text that must stay "
            f"the same; 0 turns the text comparison off), got {reprlib.repr(value)}"
        )
    return float(value)


def _unreadable(name: str, path: Path) -> str | None:
    """Why the probes could not use this CA or trust-anchor file, or None.

    Loaded here, once, so a bad file is a config error (exit 2, FILE:LINE) rather
    than a crash at start or a silent failure of every probe.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:  # a name too long, a NUL in it
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reload, a device never end
        return f"is not a regular file ({_file_kind(info.st_mode)})"
    if info.st_size > MAX_CONFIG_BYTES:
        return f"is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB"
    try:
        if name == "ca_file":
            make_ssl_context(path)
        else:
            if not load_trust_anchors(path):
                return "has no DS or DNSKEY records in it"
    except (OSError, ValueError, ssl.SSLError, dns.exception.DNSException) as exc:
        return f"cannot be loaded ({exc})"
    return None


def _build_monitor(c: Checker, table: Mapping[str, Any], base: Path) -> MonitorSettings:
    key: KeyPath = ("monitor",)
    label = "monitor"
    names = {
        "interval",
        "timeout",
        "tls_interval",
        "resolvers",
        "ca_file",
        "concurrency",
        "max_body_bytes",
        "max_redirects",
        "dnssec_trust_anchors",
        "authoritative_port",
    }
    c.known_keys(table, key, label, names)
    defaults = MonitorSettings()
    interval = c.converted(table, key, label, "interval", _duration("interval"))
    timeout = c.converted(table, key, label, "timeout", _duration("timeout"))
    tls_interval = c.converted(table, key, label, "tls_interval", _duration("tls_interval"))
    resolvers = c.converted(table, key, label, "resolvers", _resolvers)
    concurrency = c.converted(table, key, label, "concurrency", _whole_number("concurrency"))
    max_body = c.converted(table, key, label, "max_body_bytes", _whole_number("max_body_bytes"))
    max_redirects = c.converted(table, key, label, "max_redirects", _whole_number("max_redirects"))
    authoritative_port = c.converted(
        table, key, label, "authoritative_port", _whole_number("authoritative_port")
    )
    files: dict[str, Path | None] = {}
    for name in ("ca_file", "dnssec_trust_anchors"):
        raw = c.value(table, key, label, name, str)
        files[name] = None
        if raw is not None:
            path = (base / raw) if not Path(raw).is_absolute() else Path(raw)
            problem = _unreadable(name, path)
            if problem:
                c.error((*key, name), f"{label}.{name}: file {shown(raw)} {problem}")
            else:
                files[name] = path
    settings = MonitorSettings(
        interval_s=interval if interval is not None else defaults.interval_s,
        timeout_s=timeout if timeout is not None else defaults.timeout_s,
        tls_interval_s=tls_interval if tls_interval is not None else defaults.tls_interval_s,
        resolvers=resolvers if resolvers is not None else defaults.resolvers,
        ca_file=files["ca_file"],
        concurrency=concurrency if concurrency is not None else defaults.concurrency,
        max_body_bytes=max_body if max_body is not None else defaults.max_body_bytes,
        max_redirects=max_redirects if max_redirects is not None else defaults.max_redirects,
        dnssec_trust_anchors=files["dnssec_trust_anchors"],
        authoritative_port=authoritative_port,
    )
    if settings.timeout_s >= settings.interval_s:
        c.error(
            (*key, "timeout") if "timeout" in table else (*key, "interval"),
            f"monitor.timeout ({settings.timeout_s:g}s) must be shorter than "
            f"monitor.interval ({settings.interval_s:g}s)",
        )
    return settings


def _build_outage(c: Checker, table: Mapping[str, Any]) -> OutageSettings:
    key: KeyPath = ("outage",)
    label = "outage"
    converters: dict[str, Callable[[Any], Any]] = {
        "confirm_reprobes": _whole_number("confirm_reprobes"),
        "reprobe_delay": _duration("reprobe_delay"),
        "country_min_ratio": _ratio,
        "country_min_targets": _whole_number("country_min_targets"),
        "region_min_countries": _whole_number("region_min_countries"),
        "region_min_ratio": _ratio,
        "vantage_canary_ratio": _ratio,
        "overload_lag": _duration("overload_lag"),
        "impairment_hold": _duration("impairment_hold"),
    }
    c.known_keys(table, key, label, converters)
    values = {name: c.converted(table, key, label, name, fn) for name, fn in converters.items()}
    defaults = OutageSettings()

    def pick(name: str, default: Any) -> Any:
        return values[name] if values[name] is not None else default

    return OutageSettings(
        confirm_reprobes=pick("confirm_reprobes", defaults.confirm_reprobes),
        reprobe_delay_s=pick("reprobe_delay", defaults.reprobe_delay_s),
        country_min_ratio=pick("country_min_ratio", defaults.country_min_ratio),
        country_min_targets=pick("country_min_targets", defaults.country_min_targets),
        region_min_countries=pick("region_min_countries", defaults.region_min_countries),
        region_min_ratio=pick("region_min_ratio", defaults.region_min_ratio),
        vantage_canary_ratio=pick("vantage_canary_ratio", defaults.vantage_canary_ratio),
        overload_lag_s=pick("overload_lag", defaults.overload_lag_s),
        impairment_hold_s=pick("impairment_hold", defaults.impairment_hold_s),
    )


def _entry_label(kind: str, index: int, table: Mapping[str, Any]) -> str:
    """'target "e-Albania"', or 'target #3' when the name is missing or unfit to show."""
    try:
        return f'{kind} "{_name(table.get("name"))}"'
    except ValueError:
        return f"{kind} #{index + 1}"


def _required(c: Checker, table: Mapping[str, Any], key: KeyPath, label: str, name: str) -> None:
    if name not in table:
        c.error(key, f"{label}: missing required key {name!r}")


def _build_canary(c: Checker, index: int, table: Mapping[str, Any]) -> Canary | None:
    key: KeyPath = ("canary", index)
    label = _entry_label("canary", index, table)
    c.known_keys(table, key, label, {"name", "url", "expect_text"})
    _required(c, table, key, label, "name")
    name = c.converted(table, key, label, "name", _name)
    _required(c, table, key, label, "url")
    url = c.converted(table, key, label, "url", _url)
    expect_text = c.converted(table, key, label, "expect_text", _expect_text)
    if name is None or url is None:
        return None
    return Canary(name=name, url=url, expect_text=expect_text, line=c.line_of(*key))


# The EU's own codes for Greece and the United Kingdom, not ISO 3166-1's.
_EU_COUNTRY_CODES: dict[str, tuple[str, str]] = {
    "EL": ("GR", "Greece"),
    "UK": ("GB", "the United Kingdom"),
}


def _unknown_country(code: str) -> str:
    """The message for a country code that is not ISO 3166-1 alpha-2."""
    if code in _EU_COUNTRY_CODES:
        iso, country = _EU_COUNTRY_CODES[code]
        return (
            f'unknown country code {shown(code)} (did you mean "{iso}"? {code} is the EU\'s '
            f"code for {country}; ISO 3166-1 alpha-2 has {iso})"
        )
    return f"unknown country code {shown(code)} (ISO 3166-1 alpha-2, upper case; XK for Kosovo)"


def _unknown_sector(sector: str) -> str:
    """The message for a sector outside SECTORS: a near miss, then every valid one."""
    hint = _close_hint(sector, SECTORS)
    return f"unknown sector {shown(sector)}{hint}; valid sectors: {', '.join(sorted(SECTORS))}"


def _build_target(c: Checker, index: int, table: Mapping[str, Any]) -> Target | None:
    key: KeyPath = ("target", index)
    label = _entry_label("target", index, table)
    allowed = {
        "name",
        "url",
        "country",
        "sector",
        "expect_text",
        "expect_status",
        "evidence",
        "fail_if_body_matches",
        "defacement_similarity",
    }
    c.known_keys(table, key, label, allowed)
    _required(c, table, key, label, "name")
    name = c.converted(table, key, label, "name", _name)
    _required(c, table, key, label, "url")
    url = c.converted(table, key, label, "url", _url)
    country = c.value(table, key, label, "country", str, required=True)
    if country is not None and country not in ISO_ALPHA2:
        c.error((*key, "country"), f"{label}.country: {_unknown_country(country)}")
        country = None
    sector = c.value(table, key, label, "sector", str, required=True)
    if sector is not None and sector not in SECTORS:
        c.error((*key, "sector"), f"{label}.sector: {_unknown_sector(sector)}")
        sector = None
    expect_text = c.converted(table, key, label, "expect_text", _expect_text)
    expect_status = c.converted(table, key, label, "expect_status", _expect_status)
    body_phrases = c.converted(table, key, label, "fail_if_body_matches", _fail_if_body_matches)
    similarity = c.converted(table, key, label, "defacement_similarity", _similarity)
    evidence = c.value(table, key, label, "evidence", str)
    if evidence is not None and evidence not in EVIDENCE:
        c.error((*key, "evidence"), f'{label}.evidence: must be "seen" or "plausible"')
    if name is None or url is None or country is None or sector is None:
        return None
    return Target(
        name=name,
        url=url,
        country=country,
        sector=sector,
        expect_text=expect_text,
        expect_status=expect_status,
        fail_if_body_matches=body_phrases or (),
        defacement_similarity=similarity,
        evidence=evidence if evidence in EVIDENCE else "seen",
        line=c.line_of(*key),
    )


# --- maintenance windows --------------------------------------------------------

NOTE_MAX_CHARS = 200  # shown in the API, the logs and the dashboard
_EXAMPLE_INSTANT = "2026-12-01T22:00:00Z"


def _instant(value: Any) -> float:
    """A TOML offset date-time -> unix seconds; anything else (a local date-time, whose
    zone the daemon would have to guess, a date, a quoted string) is a ValueError."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{value.isoformat()} has no UTC offset; add one, e.g. "
                f"{value.isoformat()}Z for UTC or {value.isoformat()}+02:00"
            )
        return value.timestamp()
    if isinstance(value, date):
        raise ValueError(
            f"{value.isoformat()} is a date; give a date-time with an offset, "
            f"e.g. {_EXAMPLE_INSTANT}"
        )
    if isinstance(value, time):
        raise ValueError(
            f"{value.isoformat()} is a time of day; give a date-time with an offset, "
            f"e.g. {_EXAMPLE_INSTANT}"
        )
    if isinstance(value, str):
        raise ValueError(
            f"{shown(value)} is a string; write the date-time without quotes, "
            f"e.g. start = {_EXAMPLE_INSTANT}"
        )
    raise ValueError(
        f"expected an offset date-time like {_EXAMPLE_INSTANT}, got {reprlib.repr(value)}"
    )


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a non-empty list of strings, got {reprlib.repr(value)}")
    return value


def _build_maintenance(
    c: Checker, index: int, table: Mapping[str, Any], targets: Sequence[Target | None]
) -> MaintenanceWindow | None:
    key: KeyPath = ("maintenance", index)
    label = f"maintenance #{index + 1}"
    allowed = {"note", "start", "end", "every", "targets", "countries", "sectors"}
    c.known_keys(table, key, label, allowed)
    _required(c, table, key, label, "note")
    note = c.converted(table, key, label, "note", lambda v: _text(v, NOTE_MAX_CHARS))
    _required(c, table, key, label, "start")
    start = c.converted(table, key, label, "start", _instant)
    _required(c, table, key, label, "end")
    end = c.converted(table, key, label, "end", _instant)
    every = c.value(table, key, label, "every", str)
    if every is not None and every != "week":
        c.error((*key, "every"), f'{label}.every: {shown(every)} is not a recurrence; use "week"')
        every = None
    if start is not None and end is not None:
        if end <= start:
            c.error((*key, "end"), f"{label}.end: must be after start")
            end = None
        elif every == "week" and end - start >= WEEK_S:
            c.error(
                (*key, "end"),
                f"{label}.end: a weekly window must last less than a week "
                f"(this one lasts {(end - start) / 86400:g} days)",
            )
            end = None
    names = {t.name for t in targets if t is not None}
    covered: dict[str, frozenset[str]] = {}
    for field_name, known, problem in (
        ("targets", names, lambda v: f"unknown target {shown(v)}{_close_hint(v, names)}"),
        ("countries", ISO_ALPHA2, _unknown_country),
        ("sectors", SECTORS, _unknown_sector),
    ):
        values = c.converted(table, key, label, field_name, _strings) or []
        for value in values:
            if value not in known:
                c.error((*key, field_name), f"{label}.{field_name}: {problem(value)}")
        covered[field_name] = frozenset(v for v in values if v in known)
    if not any(name in table for name in covered):
        c.error(key, f"{label}: cover something: set targets, countries or sectors")
    if note is None or start is None or end is None:
        return None
    return MaintenanceWindow(
        note=note,
        start=start,
        end=end,
        every_s=WEEK_S if every == "week" else None,
        targets=covered["targets"],
        countries=covered["countries"],
        sectors=covered["sectors"],
        line=c.line_of(*key),
    )


def _close_hint(value: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _array_of_tables(c: Checker, document: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = document.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        c.error((name,), f"{name}: must be an array of tables ([[{name}]])")
        return []
    return value


# --- reading -----------------------------------------------------------------

# tomllib recurses once per nesting level (100,000 levels: RecursionError) and its memory
# grows with the square of a dotted key's parts (100,000 parts: gigabytes), so both are
# bounded before it reads the text. targets.toml needs one level and two parts.
MAX_NESTING = 32
MAX_KEY_PARTS = 32
# What decides nesting and key parts; strings and comments are skipped whole.
_STRUCTURE = re.compile(
    # Strings in the unrolled form [^q]*(?:x[^q]*)*, a tight loop per character rather
    # than an alternation, and each may be unterminated (tomllib reports that): a string
    # that fails to match would be scanned again from each of its quotes.
    r'"""[^"\\]*(?:(?:\\.?|"(?!""))[^"\\]*)*(?:"""|\Z)'  # multi-line basic string
    r"|'''[^']*(?:'(?!'')[^']*)*(?:'''|\Z)"  # multi-line literal string
    r'|"[^"\\\n]*(?:\\[^\n]?[^"\\\n]*)*"?'  # basic string
    r"|'[^'\n]*'?"  # literal string
    r"|#[^\n]*"  # comment
    r"|[][{}=,.]|\n\s*",  # what makes structure (a run of blank lines is one newline)
    re.DOTALL,
)


def _structure_problem(text: str) -> tuple[int, str] | None:
    """(line, message) where `text` nests arrays and inline tables more than MAX_NESTING
    deep or dots a key into more than MAX_KEY_PARTS parts; None when it does neither."""
    open_brackets: list[str] = []
    in_key = True  # from the start of a statement, "{" or "," to the "="
    in_header = False  # [table] or [[array]]
    key_parts = 1
    for token in _STRUCTURE.finditer(text):
        symbol = token.group()
        problem = None
        match symbol[0]:
            case '"' | "'" | "#":
                continue
            case "\n":
                if not open_brackets:
                    in_key, key_parts = True, 1
            case "[" if in_key and not open_brackets:
                in_header = True
            case "]" if in_header:
                in_header = False
            case "[" | "{":
                open_brackets.append(symbol)
                in_key, key_parts = symbol == "{", 1
                if len(open_brackets) > MAX_NESTING:
                    problem = f"arrays or inline tables nested more than {MAX_NESTING} deep"
            case "]" | "}":
                if open_brackets:
                    open_brackets.pop()
                in_key = False
            case "=":
                in_key = False
            case ",":
                in_key, key_parts = bool(open_brackets) and open_brackets[-1] == "{", 1
            case ".":
                key_parts += 1 if in_key else 0
                if key_parts > MAX_KEY_PARTS:
                    problem = f"a dotted key of more than {MAX_KEY_PARTS} parts"
        if problem:
            return text.count("\n", 0, token.start()) + 1, problem
    return None


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """`text` (read from `path`) as a TOML document; ConfigError for anything else, with
    the line when it is known."""

    def fail(line: int, message: str) -> ConfigError:
        return ConfigError([ConfigIssue(str(path), line, message)])

    problem = _structure_problem(text)
    if problem:
        raise fail(*problem)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            line = int(match[1])
        else:  # "(at end of document)": an unclosed value, reported where the file ends
            line = max(1, len(text.splitlines())) if "end of document" in message else 1
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if match:
            message += f" (column {match[2]})"
        raise fail(line, f"TOML syntax error: {message}") from None
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        limit = sys.get_int_max_str_digits()
        long_number = re.search(rf"[0-9](?:_?[0-9]){{{limit},}}", text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else 0
        raise fail(line, f"a number of more than {limit} digits") from None
    except RecursionError:  # not past _structure_problem, unless called very deep
        raise fail(0, "values nested too deeply to read") from None


def read_config_text(path: Path) -> str:
    """The text of the regular, UTF-8 file at `path`, at most MAX_CONFIG_BYTES; ConfigError
    otherwise. A FIFO, a device or a directory is refused before anything is read."""

    def fail(line: int, message: str) -> ConfigError:
        return ConfigError([ConfigIssue(str(path), line, message)])

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise fail(0, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise fail(0, f"cannot read: not a regular file ({_file_kind(mode)})")
        with open(descriptor, "rb", closefd=False) as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise fail(0, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_CONFIG_BYTES:
        raise fail(0, f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB: not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(line, f"not UTF-8 text: {exc.reason} (byte {exc.start + 1})") from None


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"


def parse_config(text: str, path: Path) -> Config:
    """Validate `text` (the contents of `path`). Raises ConfigError listing every problem,
    and nothing else whatever the text holds."""
    try:
        return _validated(parse_toml(text, path), text, path)
    except RecursionError:
        raise ConfigError([ConfigIssue(str(path), 0, "nested too deeply to validate")]) from None
    except MemoryError:
        raise ConfigError([ConfigIssue(str(path), 0, "too large to validate")]) from None


def _validated(document: dict[str, Any], text: str, path: Path) -> Config:
    c = Checker(path, text)
    c.known_keys(document, (), "", {"monitor", "outage", "canary", "target", "maintenance"})
    monitor_table = document.get("monitor", {})
    outage_table = document.get("outage", {})
    monitor = MonitorSettings()
    outage = OutageSettings()
    if isinstance(monitor_table, dict):
        monitor = _build_monitor(c, monitor_table, path.parent)
    else:
        c.error(("monitor",), "monitor: must be a table ([monitor])")
    if isinstance(outage_table, dict):
        outage = _build_outage(c, outage_table)
    else:
        c.error(("outage",), "outage: must be a table ([outage])")

    canaries = [
        _build_canary(c, i, t) for i, t in enumerate(_array_of_tables(c, document, "canary"))
    ]
    target_tables = _array_of_tables(c, document, "target")
    targets = [_build_target(c, i, t) for i, t in enumerate(target_tables)]
    if "target" not in document:
        c.error((), "no [[target]] defined: there is nothing to monitor")
    windows = [
        _build_maintenance(c, i, t, targets)
        for i, t in enumerate(_array_of_tables(c, document, "maintenance"))
    ]

    first_seen: dict[str, tuple[str, int]] = {}  # _same_name -> (the name, its line)
    for kind, entries in (("canary", canaries), ("target", targets)):
        for index, entry in enumerate(entries):
            if entry is None:
                continue
            seen = first_seen.get(_same_name(entry.name))
            if seen is None:
                first_seen[_same_name(entry.name)] = (entry.name, c.line_of(kind, index, "name"))
                continue
            first_name, first_line = seen
            message = f'{kind} "{entry.name}": duplicate name (first used on line {first_line}'
            if first_name != entry.name:
                message += f" as {shown(first_name)}; names may not differ only in case or spacing"
            c.error((kind, index, "name"), message + ")")

    if c.issues:
        raise ConfigError(sorted(c.issues, key=lambda issue: issue.line))
    return Config(
        path=path,
        monitor=monitor,
        outage=outage,
        canaries=tuple(x for x in canaries if x is not None),
        targets=tuple(x for x in targets if x is not None),
        maintenance=tuple(x for x in windows if x is not None),
    )


def load_config(path: Path) -> Config:
    """Read and validate a targets file. Raises ConfigError (with FILE:LINE issues), and
    nothing else whatever the file is or holds."""
    return parse_config(read_config_text(path), path)
