"""targets.toml -> frozen, validated configuration.

Every problem is collected and reported at once as ``FILE:LINE: message``.
tomllib gives no positions for values, so `_locate_keys` scans the file's
table headers and keys to find the line of each one. `Checker` does the
collecting; other TOML files with the same error style (the simulator's
scenarios) validate with it too.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.exception

from monitor.countries import ISO_ALPHA2
from monitor.settings import (
    EVIDENCE,
    SECTORS,
    Canary,
    Config,
    MonitorSettings,
    OutageSettings,
    Target,
)
from probes.context import make_ssl_context
from probes.dnssec import load_trust_anchors
from probes.settings import Nameserver

DEFAULT_TARGETS = Path("targets.toml")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """ "30s", "5m", "1h", "7d", "1m30s", "250ms" -> seconds. Raises ValueError otherwise."""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'"{text}" is not a duration (use e.g. "30s", "5m", "1h")')
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f'"{text}" must be longer than zero')
    return seconds


def parse_nameserver(text: str) -> Nameserver:
    """'IP' or 'IP:port' (IPv6 as '[::1]:53' or bare '::1') -> Nameserver."""
    host, port = text, 53
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
        if not match:
            raise ValueError(f'"{text}" is not IP[:port]')
        host, port = match[1], int(match[2] or 53)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(f'"{text}" is not IP[:port]')
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f'"{text}" is neither "system" nor IP[:port]') from None
    if not 0 < port < 65536:
        raise ValueError(f'"{text}": port must be 1-65535')
    return Nameserver(host, port)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(map(str, issues)))
        self.issues = issues


# --- locating keys -----------------------------------------------------------

# Where a value sits in a document: ("monitor",) is the [monitor] table, ("target", 2)
# the third [[target]], ("target", 2, "url") its url key.
KeyPath = tuple[str | int, ...]
_HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
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
                    self.error((*key, name), f"{label}.{name}: unknown key{hint}")
                else:
                    hint = f" (did you mean [{close[0]}]?)" if close else ""
                    self.error((name,), f"unknown table or key {name!r} at the top level{hint}")

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
            self.error((*key, name), f"{label}.{name}: expected {expected}, got {value!r}")
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


def _duration(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f'expected a duration string like "30s", got {value!r}')
    return parse_duration(value)


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"expected a number in (0, 1], got {value!r}")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number >= 1, got {value!r}")
    return value


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"expected a port number 1-65535, got {value!r}")
    return value


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f'"{value}" is not an http(s) URL')
    if not parts.hostname:
        raise ValueError(f'"{value}" has no host')
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f'"{value}" has an invalid port') from None
    return value


def _resolvers(value: Any) -> tuple[Nameserver, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(
            'expected a non-empty list of strings, e.g. ["system"] or ["127.0.0.1:53"]'
        )
    if "system" in value:
        if len(value) > 1:
            raise ValueError('"system" cannot be combined with explicit resolvers')
        return ()
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
        raise ValueError(f"expected a non-empty list of HTTP status codes (100-599), got {value!r}")
    return frozenset(value)


def _unreadable(name: str, path: Path) -> str | None:
    """Why the probes could not use this CA or trust-anchor file, or None.

    Loaded here, once, so a bad file is a config error (exit 2, FILE:LINE) rather
    than a crash at start or a silent failure of every probe.
    """
    try:
        if name == "ca_file":
            make_ssl_context(path)
        else:
            if not load_trust_anchors(path):
                return "no DS or DNSKEY records in it"
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
    interval = c.converted(table, key, label, "interval", _duration)
    timeout = c.converted(table, key, label, "timeout", _duration)
    tls_interval = c.converted(table, key, label, "tls_interval", _duration)
    resolvers = c.converted(table, key, label, "resolvers", _resolvers)
    concurrency = c.converted(table, key, label, "concurrency", _positive_int)
    max_body = c.converted(table, key, label, "max_body_bytes", _positive_int)
    max_redirects = c.converted(table, key, label, "max_redirects", _non_negative_int)
    authoritative_port = c.converted(table, key, label, "authoritative_port", _port)
    files: dict[str, Path | None] = {}
    for name in ("ca_file", "dnssec_trust_anchors"):
        raw = c.value(table, key, label, name, str)
        files[name] = None
        if raw is not None:
            path = (base / raw) if not Path(raw).is_absolute() else Path(raw)
            if not path.is_file():
                c.error((*key, name), f'{label}.{name}: file "{raw}" does not exist')
                continue
            problem = _unreadable(name, path)
            if problem:
                c.error((*key, name), f'{label}.{name}: file "{raw}": {problem}')
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
        "confirm_reprobes": _non_negative_int,
        "reprobe_delay": _duration,
        "country_min_ratio": _ratio,
        "country_min_targets": _positive_int,
        "region_min_countries": _positive_int,
        "region_min_ratio": _ratio,
        "vantage_canary_ratio": _ratio,
        "overload_lag": _duration,
        "impairment_hold": _duration,
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
    name = table.get("name")
    return f'{kind} "{name}"' if isinstance(name, str) and name else f"{kind} #{index + 1}"


def _build_canary(c: Checker, index: int, table: Mapping[str, Any]) -> Canary | None:
    key: KeyPath = ("canary", index)
    label = _entry_label("canary", index, table)
    c.known_keys(table, key, label, {"name", "url", "expect_text"})
    name = c.value(table, key, label, "name", str, required=True)
    url = c.converted(table, key, label, "url", _url)
    if "url" not in table:
        c.error(key, f"{label}: missing required key 'url'")
    expect_text = c.value(table, key, label, "expect_text", str)
    if name is None or url is None:
        return None
    return Canary(name=name, url=url, expect_text=expect_text, line=c.line_of(*key))


def _build_target(c: Checker, index: int, table: Mapping[str, Any]) -> Target | None:
    key: KeyPath = ("target", index)
    label = _entry_label("target", index, table)
    allowed = {"name", "url", "country", "sector", "expect_text", "expect_status", "evidence"}
    c.known_keys(table, key, label, allowed)
    name = c.value(table, key, label, "name", str, required=True)
    url = c.converted(table, key, label, "url", _url)
    if "url" not in table:
        c.error(key, f"{label}: missing required key 'url'")
    country = c.value(table, key, label, "country", str, required=True)
    if country is not None and country not in ISO_ALPHA2:
        c.error(
            (*key, "country"),
            f'{label}.country: unknown country code "{country}" '
            "(ISO 3166-1 alpha-2, upper case; XK for Kosovo)",
        )
        country = None
    sector = c.value(table, key, label, "sector", str, required=True)
    if sector is not None and sector not in SECTORS:
        close = difflib.get_close_matches(sector, list(SECTORS), n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        c.error((*key, "sector"), f'{label}.sector: unknown sector "{sector}"{hint}')
        sector = None
    expect_text = c.value(table, key, label, "expect_text", str)
    expect_status = c.converted(table, key, label, "expect_status", _expect_status)
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
        evidence=evidence if evidence in EVIDENCE else "seen",
        line=c.line_of(*key),
    )


def _array_of_tables(c: Checker, document: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = document.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        c.error((name,), f"{name}: must be an array of tables ([[{name}]])")
        return []
    return value


def parse_config(text: str, path: Path) -> Config:
    """Validate `text` (the contents of `path`). Raises ConfigError listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(match[1]) if match else 1
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if match:
            message += f" (column {match[2]})"
        raise ConfigError([ConfigIssue(str(path), line, f"TOML syntax error: {message}")]) from None

    c = Checker(path, text)
    c.known_keys(document, (), "", {"monitor", "outage", "canary", "target"})
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

    first_seen: dict[str, int] = {}
    for kind, entries in (("canary", canaries), ("target", targets)):
        for index, entry in enumerate(entries):
            if entry is None:
                continue
            if entry.name in first_seen:
                c.error(
                    (kind, index, "name"),
                    f'{kind} "{entry.name}": duplicate name (first used on line '
                    f"{first_seen[entry.name]})",
                )
            else:
                first_seen[entry.name] = c.line_of(kind, index, "name")

    if c.issues:
        raise ConfigError(sorted(c.issues, key=lambda issue: issue.line))
    return Config(
        path=path,
        monitor=monitor,
        outage=outage,
        canaries=tuple(x for x in canaries if x is not None),
        targets=tuple(x for x in targets if x is not None),
    )


def load_config(path: Path) -> Config:
    """Read and validate a targets file. Raises ConfigError (with FILE:LINE issues)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), 0, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), 1, f"not UTF-8 text: {exc.reason}")]) from None
    return parse_config(text, path)
