"""Declarative outage scenarios: a compressed timeline of faults, each with its expected conclusion.

A scenario file (TOML) replays one real event from docs/sources/incidents.md:

    name = "albania-2022"
    title = "Albania, July 2022: the state network goes dark"
    incident = "2022-07-15 AL: ..."            # what happened, from incidents.md
    countries = ["AL", "XK"]                   # the region needs at least these
    per_country = 4                            # and at least this many sites each
    vantages = ["home"]                        # simulated vantage points (first = the default)
    duration = "120s"                          # one pass; --loop starts over after it

    [[step]]
    at = "20s"                                 # offset from the start of the pass
    note = "AKSHI pulls the plug on its network"
    faults = [{ scope = "network", selector = "AL-gov", mode = "blackhole" }]

    [[step.expect]]                            # what govwatch should conclude while this holds
    summary = "AL country outage ..."          # required: the conclusion, in words
    vantage = "home"                           # optional: only for this vantage (default: all)
    vantage_up = true                          # default true
    country_outages = ["AL"]                   # default []
    region_outage = false                      # default false
    dominant_reason = { AL = "tls_handshake" }
    shared = { AL = ["address_prefix", "nameservers", "issuer"] }
    down = ["e-albania.al.test"]               # targets that must be down (not exhaustive)
    up = ["e-femijet.tirana.al.test"]          # targets that must stay up

Faults accumulate from step to step; `mode = "recover"` clears a scope. Every
pass starts from a fully recovered region. Errors are reported as FILE:LINE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from monitor.config import (
    Checker,
    ConfigError,
    ConfigIssue,
    KeyPath,
    parse_duration,
    parse_toml,
    read_config_text,
)
from monitor.countries import ISO_ALPHA2
from monitor.outage import HintKind
from probes.results import Reason
from simulator.region import (
    COUNTRY_INDEX,
    HOME_VANTAGE,
    MAX_PER_COUNTRY,
    MAX_VANTAGES,
    Region,
    Scope,
    parse_mode,
)

SCENARIO_DIR = Path(__file__).with_name("scenarios")
SHARED_KINDS = frozenset(kind.value for kind in HintKind)  # what incident hints name

log = logging.getLogger(__name__)


class ScenarioError(ConfigError):
    """A scenario file is invalid; `issues` holds every FILE:LINE problem."""


@dataclass(frozen=True, slots=True)
class FaultAction:
    scope: Scope
    selector: str
    mode: str  # canonical mode name or "recover"
    vantage: str | None = None  # None: every vantage
    line: int = 0

    def describe(self) -> str:
        where = f" (from {self.vantage})" if self.vantage else ""
        return f"{self.scope} {self.selector}: {self.mode}{where}"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What govwatch should conclude, seen from one vantage (or all), while a step holds."""

    summary: str
    vantage: str | None = None
    vantage_up: bool = True
    country_outages: frozenset[str] = frozenset()
    region_outage: bool = False
    dominant_reason: Mapping[str, Reason] = field(default_factory=dict)
    shared: Mapping[str, frozenset[str]] = field(default_factory=dict)
    down: tuple[str, ...] = ()
    up: tuple[str, ...] = ()
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "vantage": self.vantage,
            "vantage_up": self.vantage_up,
            "country_outages": sorted(self.country_outages),
            "region_outage": self.region_outage,
            "dominant_reason": {cc: str(r) for cc, r in sorted(self.dominant_reason.items())},
            "shared": {cc: sorted(kinds) for cc, kinds in sorted(self.shared.items())},
            "down": list(self.down),
            "up": list(self.up),
        }


@dataclass(frozen=True, slots=True)
class Step:
    at_s: float
    note: str
    faults: tuple[FaultAction, ...]
    expectations: tuple[Expectation, ...]
    line: int = 0

    def expectation(self, vantage: str) -> Expectation | None:
        specific = [e for e in self.expectations if e.vantage == vantage]
        general = [e for e in self.expectations if e.vantage is None]
        return next(iter(specific or general), None)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    incident: str
    countries: tuple[str, ...]
    per_country: int
    vantages: tuple[str, ...]
    duration_s: float
    steps: tuple[Step, ...]
    path: Path

    @property
    def peak(self) -> Step:
        """The headline step: a region outage, else the most countries, else a blind vantage."""

        def weight(step: Step) -> tuple[bool, int, bool, int]:
            return (
                any(e.region_outage for e in step.expectations),
                max((len(e.country_outages) for e in step.expectations), default=0),
                any(not e.vantage_up for e in step.expectations),
                len(step.faults),
            )

        return max(self.steps, key=weight)

    def headline(self) -> str:
        expectations = self.peak.expectations
        return " / ".join(e.summary for e in expectations)


# --- parsing -------------------------------------------------------------------


def _country_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of country codes, got {value!r}")
    unknown = [v for v in value if v not in COUNTRY_INDEX]
    if unknown:
        raise ValueError(
            f"unsupported countries {unknown} (the simulator has: {', '.join(COUNTRY_INDEX)})"
        )
    return tuple(value)


def _name_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _country_code(code: str) -> str:
    if code not in ISO_ALPHA2:
        raise ValueError(f"unknown country code {code!r}")
    return code


def _reason_table(value: Any) -> dict[str, Reason]:
    if not isinstance(value, dict):
        raise ValueError(f'expected a table like {{ AL = "connect_timeout" }}, got {value!r}')
    table: dict[str, Reason] = {}
    for code, reason in value.items():
        try:
            table[_country_code(code)] = Reason(reason)
        except ValueError:
            raise ValueError(
                f"{code} = {reason!r}: not a failure reason ({', '.join(Reason)})"
            ) from None
    return table


def _shared_table(value: Any) -> dict[str, frozenset[str]]:
    if not isinstance(value, dict):
        raise ValueError(f'expected a table like {{ AL = ["address_prefix"] }}, got {value!r}')
    table: dict[str, frozenset[str]] = {}
    for code, kinds in value.items():
        if not isinstance(kinds, list) or not set(kinds) <= SHARED_KINDS:
            raise ValueError(f"{code} = {kinds!r}: expected a list of {sorted(SHARED_KINDS)}")
        table[_country_code(code)] = frozenset(kinds)
    return table


class _ScenarioParser:
    def __init__(self, text: str, path: Path) -> None:
        self.c = Checker(path, text)
        self.path = path
        self.vantages: tuple[str, ...] = (HOME_VANTAGE,)
        self._expect_index = 0  # [[step.expect]] tables are numbered across all steps

    def fault(self, key: KeyPath, label: str, raw: Any) -> FaultAction | None:
        c = self.c
        if not isinstance(raw, dict):
            c.error(key, f"{label}: expected an inline table {{ scope, selector, mode }}")
            return None
        c.known_keys(raw, key, label, {"scope", "selector", "mode", "vantage"})
        scope_text = c.value(raw, key, label, "scope", str, required=True)
        selector = c.value(raw, key, label, "selector", str, required=True)
        mode_text = c.value(raw, key, label, "mode", str, required=True)
        vantage = c.value(raw, key, label, "vantage", str)
        scope = None
        if scope_text is not None:
            try:
                scope = Scope(scope_text)
            except ValueError:
                c.error(key, f"{label}.scope: unknown scope {scope_text!r} ({', '.join(Scope)})")
        mode = None
        if mode_text is not None:
            try:
                mode = parse_mode(mode_text)
            except ValueError as exc:
                c.error(key, f"{label}.mode: {exc}")
        if vantage is not None and vantage not in self.vantages:
            c.error(key, f"{label}.vantage: {vantage!r} is not one of {list(self.vantages)}")
        if scope is None or selector is None or mode is None:
            return None
        return FaultAction(scope, selector, mode, vantage, line=c.line_of(*key))

    def expectation(
        self, step_label: str, index: int, raw: Mapping[str, Any]
    ) -> Expectation | None:
        c = self.c
        key: KeyPath = ("step.expect", self._expect_index)
        label = f"{step_label}.expect[{index}]"
        self._expect_index += 1
        allowed = {
            "summary",
            "vantage",
            "vantage_up",
            "country_outages",
            "region_outage",
            "dominant_reason",
            "shared",
            "down",
            "up",
        }
        c.known_keys(raw, key, label, allowed)
        summary = c.value(raw, key, label, "summary", str, required=True)
        vantage = c.value(raw, key, label, "vantage", str)
        if vantage is not None and vantage not in self.vantages:
            c.error(
                (*key, "vantage"),
                f"{label}.vantage: {vantage!r} is not one of {list(self.vantages)}",
            )
        vantage_up = c.value(raw, key, label, "vantage_up", bool)
        region_outage = c.value(raw, key, label, "region_outage", bool)
        outages = c.converted(raw, key, label, "country_outages", _country_list)
        reasons = c.converted(raw, key, label, "dominant_reason", _reason_table)
        shared = c.converted(raw, key, label, "shared", _shared_table)
        down = c.converted(raw, key, label, "down", _name_list)
        up = c.converted(raw, key, label, "up", _name_list)
        if summary is None:
            return None
        return Expectation(
            summary=summary,
            vantage=vantage,
            vantage_up=True if vantage_up is None else vantage_up,
            country_outages=frozenset(outages or ()),
            region_outage=bool(region_outage),
            dominant_reason=reasons or {},
            shared=shared or {},
            down=down or (),
            up=up or (),
            line=c.line_of(*key),
        )

    def step(self, index: int, raw: Mapping[str, Any]) -> Step | None:
        c = self.c
        key: KeyPath = ("step", index)
        label = f"step #{index + 1}"
        c.known_keys(raw, key, label, {"at", "note", "faults", "expect"})
        at = c.converted(raw, key, label, "at", _offset)
        if "at" not in raw:
            c.error(key, f"{label}: missing required key 'at'")
        note = c.value(raw, key, label, "note", str, required=True)
        faults_raw = c.value(raw, key, label, "faults", list) or []
        faults = [
            self.fault((*key, "faults"), f"{label}.faults[{i}]", f)
            for i, f in enumerate(faults_raw)
        ]
        expect_raw = raw.get("expect", [])
        if not isinstance(expect_raw, list) or not all(isinstance(e, dict) for e in expect_raw):
            c.error((*key, "expect"), f"{label}.expect: must be [[step.expect]] tables")
            expect_raw = []
        expectations = [self.expectation(label, i, e) for i, e in enumerate(expect_raw)]
        seen: set[str | None] = set()
        for e in expectations:
            if e is not None and e.vantage in seen:
                c.error((*key, "expect"), f"{label}: two expectations for vantage {e.vantage!r}")
            if e is not None:
                seen.add(e.vantage)
        if at is None or note is None:
            return None
        return Step(
            at_s=at,
            note=note,
            faults=tuple(f for f in faults if f is not None),
            expectations=tuple(e for e in expectations if e is not None),
            line=c.line_of(*key),
        )

    def scenario(self, document: Mapping[str, Any]) -> Scenario:
        c = self.c
        top: KeyPath = ()
        label = "scenario"
        allowed = {
            "name",
            "title",
            "incident",
            "countries",
            "per_country",
            "vantages",
            "duration",
            "step",
        }
        c.known_keys(document, top, label, allowed)
        name = c.value(document, top, label, "name", str, required=True)
        title = c.value(document, top, label, "title", str, required=True)
        incident = c.value(document, top, label, "incident", str, required=True)
        countries = c.converted(document, top, label, "countries", _country_list)
        if "countries" not in document:
            c.error(top, f"{label}: missing required key 'countries'")
        per_country = c.value(document, top, label, "per_country", int)
        if per_country is not None and not 1 <= per_country <= MAX_PER_COUNTRY:
            c.error(
                ("per_country",),
                f"{label}.per_country: must be 1-{MAX_PER_COUNTRY}, got {per_country}",
            )
        vantages = c.converted(document, top, label, "vantages", _name_list)
        if vantages is not None:
            if not 1 <= len(vantages) <= MAX_VANTAGES or len(set(vantages)) != len(vantages):
                c.error(("vantages",), f"{label}.vantages: 1-{MAX_VANTAGES} distinct names")
            else:
                self.vantages = vantages
        duration = c.converted(document, top, label, "duration", _offset)
        if "duration" not in document:
            c.error(top, f"{label}: missing required key 'duration'")
        steps_raw = document.get("step", [])
        if not isinstance(steps_raw, list) or not steps_raw:
            c.error(("step",), f"{label}: needs at least one [[step]]")
            steps_raw = []
        steps = [self.step(i, s) for i, s in enumerate(steps_raw) if isinstance(s, dict)]
        previous = -1.0
        for index, s in enumerate(steps):
            if s is None:
                continue
            if s.at_s <= previous:
                c.error(("step", index, "at"), f"step #{index + 1}.at: steps must be in time order")
            if duration is not None and s.at_s >= duration:
                c.error(
                    ("step", index, "at"),
                    f"step #{index + 1}.at: {s.at_s:g}s is not before duration ({duration:g}s)",
                )
            previous = s.at_s
        if c.issues:
            raise ScenarioError(sorted(c.issues, key=lambda issue: issue.line))
        assert name is not None and title is not None and incident is not None
        assert countries is not None and duration is not None
        return Scenario(
            name=name,
            title=title,
            incident=incident,
            countries=countries,
            per_country=per_country or 4,
            vantages=self.vantages,
            duration_s=duration,
            steps=tuple(s for s in steps if s is not None),
            path=self.path,
        )


def _offset(value: Any) -> float:
    """A step offset: a duration string, where "0s" is allowed."""
    if value == "0s" or value == 0:
        return 0.0
    if not isinstance(value, str):
        raise ValueError(f'expected a duration string like "30s", got {value!r}')
    return parse_duration(value)


def parse_scenario(text: str, path: Path) -> Scenario:
    """Validate a scenario's text. Raises ScenarioError listing every FILE:LINE problem.
    The TOML is read as targets.toml is (bounded nesting, no traceback on any input)."""
    try:
        document = parse_toml(text, path)
    except ConfigError as exc:
        raise ScenarioError(exc.issues) from None
    return _ScenarioParser(text, path).scenario(document)


def load_scenario(path: Path) -> Scenario:
    """A scenario file: regular, UTF-8, at most MAX_CONFIG_BYTES, as targets.toml."""
    try:
        text = read_config_text(path)
    except ConfigError as exc:
        raise ScenarioError(exc.issues) from None
    return parse_scenario(text, path)


def builtin_scenarios() -> dict[str, Path]:
    """The scenarios shipped with govwatch, by name (file stem)."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def find_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    builtin = builtin_scenarios()
    if name_or_path in builtin:
        return load_scenario(builtin[name_or_path])
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_scenario(path)
    raise ScenarioError(
        [
            ConfigIssue(
                name_or_path,
                0,
                f"no such scenario (built in: {', '.join(builtin)}; or give a .toml file)",
            )
        ]
    )


def check_scenario_fits(scenario: Scenario, region: Region) -> list[ConfigIssue]:
    """Every selector, target and vantage the scenario names must exist in `region`."""
    issues: list[ConfigIssue] = []
    file = str(scenario.path)
    missing_vantages = set(scenario.vantages) - set(region.vantages)
    if missing_vantages:
        issues.append(ConfigIssue(file, 1, f"the region lacks vantages {sorted(missing_vantages)}"))
    for step in scenario.steps:
        for action in step.faults:
            try:
                region.select(action.scope, action.selector)
            except LookupError as exc:
                issues.append(ConfigIssue(file, action.line, str(exc)))
        for expectation in step.expectations:
            for host in (*expectation.down, *expectation.up):
                try:
                    region.site(host)
                except LookupError as exc:
                    issues.append(ConfigIssue(file, expectation.line, str(exc)))
    return issues


# --- playing -------------------------------------------------------------------


class FaultSink(Protocol):
    """What a scenario drives: a running simulated region."""

    async def apply_fault(
        self, scope: Scope, selector: str, mode: str, vantage: str | None = None
    ) -> tuple[str, ...]: ...

    async def recover_all(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PlayerStatus:
    scenario: str
    pass_number: int
    step_index: int  # -1 before the first step
    step_note: str
    started_at: float  # this pass, unix time
    next_step_in_s: float | None

    def to_dict(self, step: Step | None) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "pass": self.pass_number,
            "step": self.step_index,
            "note": self.step_note,
            "pass_started_at": self.started_at,
            "next_step_in_s": self.next_step_in_s,
            "expect": [e.to_dict() for e in step.expectations] if step else [],
        }


def _timeline(scenario: Scenario, speed: float) -> Iterator[tuple[int, Step, float]]:
    for index, step in enumerate(scenario.steps):
        yield index, step, step.at_s / speed


async def play_scenario(
    scenario: Scenario,
    sink: FaultSink,
    *,
    loop: bool = False,
    speed: float = 1.0,
    on_step: Callable[[PlayerStatus, Step], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Apply the scenario's steps at their (speed-compressed) times; repeat if `loop`."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    pass_number = 0
    while True:
        pass_number += 1
        await sink.recover_all()
        start = clock()
        wall_start = time.time()
        steps = list(_timeline(scenario, speed))
        for position, (index, step, offset) in enumerate(steps):
            delay = start + offset - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            for action in step.faults:
                await sink.apply_fault(action.scope, action.selector, action.mode, action.vantage)
            following = steps[position + 1][2] if position + 1 < len(steps) else None
            status = PlayerStatus(
                scenario=scenario.name,
                pass_number=pass_number,
                step_index=index,
                step_note=step.note,
                started_at=wall_start,
                next_step_in_s=None if following is None else following - offset,
            )
            log.info("scenario %s step %d: %s", scenario.name, index, step.note)
            if on_step is not None:
                on_step(status, step)
        remaining = start + scenario.duration_s / speed - clock()
        if remaining > 0:
            await asyncio.sleep(remaining)
        if not loop:
            return
