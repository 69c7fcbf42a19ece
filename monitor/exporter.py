"""Prometheus metrics over the daemon's current snapshot.

`SnapshotCollector` is a custom collector (as in client_python's docs): every
scrape reads the snapshot the daemon last published and builds the metric
families from it, so a target removed from the config has no series at the
next scrape. Nothing is registered at import time and the default registry is
never touched: `make_registry()` returns a private `CollectorRegistry`.

Per-probe names follow blackbox_exporter's; state and aggregates carry the
`govwatch_` prefix. The names and labels are a contract (the README's Metrics section, the
alerting rules in deploy/prometheus/); the README's metrics table lists them.
Every series carries `vantage` when the daemon runs with `--vantage NAME`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import monitor
from monitor.core import Impairment
from monitor.outage import Scope
from monitor.snapshot import Snapshot, TargetView
from monitor.state import TargetState
from monitor.tamper import KINDS_BY_PROBE
from probes.results import ProbeKind, ProbeResult

SnapshotSource = Callable[[], Snapshot | None]

PROBE_LABELS: Final = ("target", "country", "sector", "probe")
TARGET_LABELS: Final = ("target", "country", "sector")
STATES: Final = (TargetState.UP, TargetState.DOWN, TargetState.UNKNOWN, TargetState.MAINTENANCE)
# Outage scopes exported by govwatch_outage_active (target incidents are govwatch_target_up).
_REGION: Final = Scope.REGION.value
_COUNTRY: Final = Scope.COUNTRY.value


class _Families:
    """Metric families that all get the `vantage` label when one is set."""

    def __init__(self, vantage: str | None) -> None:
        self.label_names: tuple[str, ...] = ("vantage",) if vantage else ()
        self.label_values: tuple[str, ...] = (vantage,) if vantage else ()
        self.extra: dict[str, str] = {"vantage": vantage} if vantage else {}

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=(*labels, *self.label_names))

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=(*labels, *self.label_names))

    def info(self, name: str, doc: str, labels: Sequence[str] = ()) -> InfoMetricFamily:
        """`name` without the `_info` suffix: the client library appends it."""
        return InfoMetricFamily(name, doc, labels=(*labels, *self.label_names))

    def values(self, *values: str) -> tuple[str, ...]:
        return (*values, *self.label_values)


class SnapshotCollector:
    """Builds every govwatch metric from the snapshot `get_snapshot()` returns now.

    Before the first snapshot only `govwatch_build_info` (and the process
    metrics, if enabled) are exported.
    """

    def __init__(self, get_snapshot: SnapshotSource, *, process_metrics: bool = True) -> None:
        self._get_snapshot = get_snapshot
        # registry=None: collected through this collector, so the vantage label is added.
        self._process = ProcessCollector(registry=None) if process_metrics else None
        self._label_sets: dict[LabelKey, dict[str, str]] = {}

    def collect(self) -> Iterator[Metric]:
        snapshot = self._get_snapshot()
        families = _Families(snapshot.vantage if snapshot is not None else None)
        build = families.info("govwatch_build", "govwatch's version; always 1.", ("version",))
        build.add_metric(families.values(monitor.__version__), {})
        yield build
        if snapshot is not None:
            sets = _LabelSets(self._label_sets)
            targets = snapshot.targets
            yield from _probe_families(targets, families, sets)
            yield from _target_families(targets, families, sets)
            yield _tamper_family(snapshot, families, sets)
            yield from _aggregate_families(snapshot, families)
            yield from _health_families(snapshot, families)
            # A plain swap: a scrape running in another thread keeps the dicts it read.
            self._label_sets = sets.current
        if self._process is not None:
            yield from _with_labels(self._process.collect(), families)


def make_registry(
    get_snapshot: SnapshotSource, *, process_metrics: bool = True
) -> CollectorRegistry:
    """A private registry holding one `SnapshotCollector` over `get_snapshot`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(get_snapshot, process_metrics=process_metrics))
    return registry


def _with_labels(metrics: Iterable[Metric], families: _Families) -> Iterator[Metric]:
    if not families.label_names:
        yield from metrics
        return
    extra = dict(zip(families.label_names, families.label_values, strict=True))
    for metric in metrics:
        metric.samples = [s._replace(labels={**s.labels, **extra}) for s in metric.samples]
        yield metric


class _Series:
    """Appends samples with ready-made label dicts: the per-target hot path.

    `add_metric` zips label names with values for every sample; with ~20
    series per target that dominates a scrape, so the loops below build each
    label dict once and share it between families (nobody mutates them).
    """

    __slots__ = ("_append", "_name")

    def __init__(self, family: GaugeMetricFamily | InfoMetricFamily) -> None:
        self._append = family.samples.append
        # The names InfoMetricFamily.add_metric would give its samples.
        self._name = f"{family.name}_info" if family.type == "info" else family.name

    def add(self, labels: dict[str, str], value: float) -> None:
        self._append(Sample(self._name, labels, value))


LabelKey = tuple[tuple[str, ...], tuple[str, ...]]


class _LabelSets:
    """Label dicts kept from one scrape to the next.

    A target's label dicts are the same objects at every scrape, so the renderer
    formats each of them once in its life rather than at every scrape (300,000 label
    sets at 10,000 targets). Those of removed targets are not carried over.
    """

    __slots__ = ("current", "previous")

    def __init__(self, previous: dict[LabelKey, dict[str, str]]) -> None:
        self.previous = previous
        self.current: dict[LabelKey, dict[str, str]] = {}

    def get(self, names: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
        key = (names, values)
        found = self.current.get(key)
        if found is None:
            found = self.previous.get(key)
            if found is None:
                found = dict(zip(names, values, strict=True))
            self.current[key] = found
        return found


def _probe_families(
    targets: Sequence[TargetView], f: _Families, sets: _LabelSets
) -> Iterator[Metric]:
    success = f.gauge("probe_success", "1 if the probe's latest run succeeded.", PROBE_LABELS)
    duration = f.gauge(
        "probe_duration_seconds", "How long the probe's latest run took.", PROBE_LABELS
    )
    failure = f.info(
        "govwatch_probe_failure",
        "1 while the probe's latest run failed, with the failure reason.",
        (*PROBE_LABELS, "reason"),
    )
    status_code = f.gauge(
        "probe_http_status_code",
        "HTTP status of the latest response (after redirects); 0 when none came.",
        PROBE_LABELS,
    )
    phases = f.gauge(
        "probe_http_duration_seconds",
        "Seconds the latest HTTP probe spent per phase.",
        (*PROBE_LABELS, "phase"),
    )
    tls_version = f.info(
        "probe_tls_version",
        "The TLS version the latest handshake negotiated.",
        (*PROBE_LABELS, "version"),
    )
    earliest_expiry = f.gauge(
        "probe_ssl_earliest_cert_expiry",
        "Unix time the first certificate of the presented chain expires.",
        PROBE_LABELS,
    )
    leaf_expiry = f.gauge(
        "govwatch_tls_leaf_cert_expiry_timestamp_seconds",
        "Unix time the server's own (leaf) certificate expires.",
        PROBE_LABELS,
    )
    dns_lookup = f.gauge(
        "probe_dns_lookup_time_seconds",
        "Seconds the latest DNS probe took to resolve the host.",
        PROBE_LABELS,
    )
    dnssec_signed = f.gauge(
        "govwatch_dnssec_signed",
        "1 if the host's zone is DNSSEC-signed (publishes DNSKEYs), 0 if not.",
        PROBE_LABELS,
    )
    rrsig_expiry = f.gauge(
        "govwatch_dnssec_rrsig_expiry_timestamp_seconds",
        "Unix time the signed zone's first RRSIG expires.",
        PROBE_LABELS,
    )
    add_success, add_duration, add_failure, add_status, add_phase, add_version = (
        _Series(family) for family in (success, duration, failure, status_code, phases, tls_version)
    )
    add_earliest, add_leaf, add_lookup, add_signed, add_rrsig = (
        _Series(family)
        for family in (earliest_expiry, leaf_expiry, dns_lookup, dnssec_signed, rrsig_expiry)
    )
    names = (*PROBE_LABELS, *f.label_names)
    with_reason, with_phase = (*names, "reason"), (*names, "phase")
    with_version, extra = (*names, "version"), f.label_values
    for view in targets:
        target = view.target
        for kind, track in view.status.probes.items():
            result: ProbeResult = track.last
            values = (target.name, target.country, target.sector, kind.value, *extra)
            labels = sets.get(names, values)
            add_success.add(labels, 1.0 if result.ok else 0.0)
            add_duration.add(labels, result.duration_s)
            if result.reason is not None:
                add_failure.add(sets.get(with_reason, (*values, result.reason.value)), 1.0)
            facts = result.facts
            if kind is ProbeKind.HTTP:
                add_status.add(labels, float(facts.http_status or 0))
                for phase, seconds in result.phases.items():
                    add_phase.add(sets.get(with_phase, (*values, phase)), seconds)
                if facts.tls_version:
                    add_version.add(sets.get(with_version, (*values, facts.tls_version)), 1.0)
            elif kind is ProbeKind.TLS and facts.tls_leaf_expiry is not None:
                add_earliest.add(labels, facts.tls_expiry or facts.tls_leaf_expiry)
                add_leaf.add(labels, facts.tls_leaf_expiry)
                add_version.add(sets.get(with_version, (*values, facts.tls_version or "")), 1.0)
            elif kind is ProbeKind.DNS:
                resolve_s = result.phases.get("resolve")
                if resolve_s is not None:
                    add_lookup.add(labels, resolve_s)
                if facts.dnssec_signed is not None:
                    add_signed.add(labels, 1.0 if facts.dnssec_signed else 0.0)
                    if facts.dnssec_signed and facts.dnssec_expiry is not None:
                        add_rrsig.add(labels, facts.dnssec_expiry)
    yield from (success, duration, failure, status_code, phases, tls_version)
    yield from (earliest_expiry, leaf_expiry, dns_lookup, dnssec_signed, rrsig_expiry)


def _target_families(
    targets: Sequence[TargetView], f: _Families, sets: _LabelSets
) -> Iterator[Metric]:
    up = f.gauge(
        "govwatch_target_up",
        "1 if the target is up, 0 if confirmed down; absent while its state is unknown "
        "or maintenance.",
        TARGET_LABELS,
    )
    state = f.gauge(
        "govwatch_target_state",
        "1 for the target's reported state (up, down, unknown, maintenance); reason is set "
        "when down.",
        (*TARGET_LABELS, "state", "reason"),
    )
    maintenance = f.gauge(
        "govwatch_maintenance_active",
        "1 while a [[maintenance]] window covers the target, else 0. Alerts are inhibited by it.",
        TARGET_LABELS,
    )
    add_up, add_state, add_maintenance = _Series(up), _Series(state), _Series(maintenance)
    names = (*TARGET_LABELS, *f.label_names)
    with_state, extra = (*names, "state", "reason"), f.label_values
    for view in targets:
        target = view.target
        values = (target.name, target.country, target.sector, *extra)
        labels = sets.get(names, values)
        in_maintenance = view.state is TargetState.MAINTENANCE
        if view.state is not TargetState.UNKNOWN and not in_maintenance:
            add_up.add(labels, 1.0 if view.state is TargetState.UP else 0.0)
        add_maintenance.add(labels, 1.0 if in_maintenance else 0.0)
        reason = view.reason.value if view.reason is not None else ""
        add_state.add(sets.get(with_state, (*values, view.state.value, reason)), 1.0)
    yield up
    yield state
    yield maintenance


def _tamper_family(snapshot: Snapshot, f: _Families, sets: _LabelSets) -> Metric:
    tamper = f.gauge(
        "govwatch_tamper_signal",
        "1 while a tamper signal of this kind is raised for the target (until acknowledged "
        "with `govwatch ack`), else 0; one series per kind its probes judge.",
        ("target", "country", "kind"),
    )
    add = _Series(tamper)
    names = ("target", "country", "kind", *f.label_names)
    raised = snapshot.world.signals
    for target in snapshot.world.targets:
        for probe in target.probe_kinds:
            for kind in KINDS_BY_PROBE[probe]:
                values = (target.name, target.country, kind.value, *f.label_values)
                add.add(sets.get(names, values), 1.0 if (target.name, kind) in raised else 0.0)
    return tamper


def _aggregate_families(snapshot: Snapshot, f: _Families) -> Iterator[Metric]:
    world = snapshot.world

    availability = f.gauge(
        "govwatch_country_availability_ratio",
        "Share of the country's targets up among those whose state is known.",
        ("country",),
    )
    counts = f.gauge(
        "govwatch_country_targets",
        "The country's targets per reported state.",
        ("country", "state"),
    )
    outage = f.gauge(
        "govwatch_outage_active",
        "1 while a country (scope=country) or the region (scope=region) is in outage.",
        ("scope", "country"),
    )
    for country in world.countries:
        ratio = country.availability
        if ratio is not None:
            availability.add_metric(f.values(country.country), ratio)
        per_state = (country.up, country.down, country.unknown, country.maintenance)
        for state, count in zip(STATES, per_state, strict=True):
            counts.add_metric(f.values(country.country, state.value), float(count))
        outage.add_metric(f.values(_COUNTRY, country.country), 1.0 if country.in_outage else 0.0)
    outage.add_metric(f.values(_REGION, ""), 1.0 if world.region_outage else 0.0)
    yield from (availability, counts, outage)

    vantage_up = f.gauge(
        "govwatch_vantage_up",
        "1 if the monitor itself is online (its canaries answer), 0 if not.",
    )
    vantage_up.add_metric(f.values(), 1.0 if snapshot.vantage_up else 0.0)
    yield vantage_up

    impaired = f.gauge(
        "govwatch_vantage_impaired",
        "1 while the monitor cannot trust its own view, by reason: uplink (canaries fail), "
        "overload (event loop lag, starved probes), resources (file descriptors).",
        ("reason",),
    )
    for reason in Impairment:
        impaired.add_metric(f.values(reason.value), 1.0 if reason in world.impaired else 0.0)
    yield impaired

    canary_up = f.gauge(
        "govwatch_canary_up",
        "1 if the canary is up, 0 if confirmed down; absent while unknown.",
        ("canary",),
    )
    for canary in snapshot.canaries:
        if canary.status.state is not TargetState.UNKNOWN:
            up = canary.status.state is TargetState.UP
            canary_up.add_metric(f.values(canary.canary.name), 1.0 if up else 0.0)
    yield canary_up

    probes_total = f.counter(
        "govwatch_probes", "Probe runs finished since the daemon started.", ("probe", "result")
    )
    for kind in ProbeKind:
        for ok, result in ((True, "success"), (False, "failure")):
            runs = snapshot.probe_counts.get((kind, ok), 0)
            probes_total.add_metric(f.values(kind.value, result), float(runs))
    yield probes_total

    lag = f.gauge(
        "govwatch_schedule_lag_seconds",
        "How late the scheduler started probes, as the scheduler measures it.",
    )
    lag.add_metric(f.values(), snapshot.schedule_lag_s)
    yield lag

    if snapshot.last_probe_at is not None:
        last_probe = f.gauge(
            "govwatch_last_probe_timestamp_seconds", "Unix time the latest probe finished."
        )
        last_probe.add_metric(f.values(), snapshot.last_probe_at)
        yield last_probe

    incidents = f.gauge("govwatch_incidents_open", "Open incidents per scope.", ("scope",))
    open_per_scope = Counter(incident.scope for incident in snapshot.open_incidents)
    for scope in Scope:
        incidents.add_metric(f.values(scope.value), float(open_per_scope[scope]))
    yield incidents

    reload_ok = f.gauge(
        "govwatch_config_last_reload_successful",
        "1 if the last (re)load of the configuration succeeded, 0 if it was rejected.",
    )
    reload_ok.add_metric(f.values(), 1.0 if snapshot.config_reload_ok else 0.0)
    yield reload_ok

    if snapshot.config_reload_at is not None:
        reload_at = f.gauge(
            "govwatch_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful (re)load of the configuration.",
        )
        reload_at.add_metric(f.values(), snapshot.config_reload_at)
        yield reload_at

    started = f.gauge("govwatch_start_time_seconds", "Unix time the daemon started.")
    started.add_metric(f.values(), snapshot.started_at)
    yield started


def _health_families(snapshot: Snapshot, f: _Families) -> Iterator[Metric]:
    """The daemon's own plumbing: is the history being written, are tasks leaking?"""
    if snapshot.tasks is not None:
        tasks = f.gauge("govwatch_asyncio_tasks", "asyncio tasks alive in the daemon.")
        tasks.add_metric(f.values(), float(snapshot.tasks))
        yield tasks
    history = snapshot.history
    if history is None:
        return
    written = f.counter("govwatch_history_records_written", "Records committed to the history.")
    written.add_metric(f.values(), float(history.written))
    failed = f.counter(
        "govwatch_history_write_errors",
        "Failed history write transactions (disk full, I/O error, corrupt page).",
    )
    failed.add_metric(f.values(), float(history.errors))
    dropped = f.counter(
        "govwatch_history_records_dropped",
        "Records given up on: the backlog was full, the record unstorable, or left at close.",
    )
    dropped.add_metric(f.values(), float(history.dropped))
    pending = f.gauge("govwatch_history_pending_records", "Records waiting to be written.")
    pending.add_metric(f.values(), float(history.pending))
    yield from (written, failed, dropped, pending)
    if history.last_flush_at is not None:
        last = f.gauge(
            "govwatch_history_last_write_timestamp_seconds",
            "Unix time of the last successful history write.",
        )
        last.add_metric(f.values(), history.last_flush_at)
        yield last


def _go_float(value: float) -> str:
    """A sample value as Prometheus's Go code prints it (1.0, +Inf, 1.8e+09)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _escape_value(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value  # nearly always: three scans in C instead of three copies
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Renderer:
    """Renders a registry in the text exposition format, byte for byte what
    prometheus_client's generate_latest writes for these collectors, at a fraction of
    its cost.

    generate_latest sorts and escapes every label of every sample; at 10,000 targets that
    is 300,000 lines and seconds of CPU per scrape. The collector hands out the same label
    dicts scrape after scrape (`_LabelSets`), so each is formatted once and kept here.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # id(labels) -> (labels, text); the dict is held so its id cannot be reused.
        self._formatted: dict[int, tuple[dict[str, str], str]] = {}

    def render(self) -> bytes:
        output: list[str] = []
        append = output.append
        previous = self._formatted
        formatted: dict[int, tuple[dict[str, str], str]] = {}
        for metric in self.registry.collect():
            name, kind = metric.name, metric.type
            if kind == "counter":
                name += "_total"
            elif kind == "info":
                name, kind = name + "_info", "gauge"
            elif kind == "unknown":
                kind = "untyped"
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
            for sample in metric.samples:
                if sample.timestamp is not None or sample.name.endswith(_OPENMETRICS_ONLY):
                    raise ValueError(f"Renderer does not write {sample.name}; use generate_latest")
                labels = sample.labels
                if not labels:
                    append(f"{sample.name} {_go_float(sample.value)}\n")
                    continue
                key = id(labels)
                cached = formatted.get(key) or previous.get(key)
                if cached is None or cached[0] is not labels:
                    pairs = sorted(labels.items())
                    text = ",".join([f'{k}="{_escape_value(v)}"' for k, v in pairs])
                    cached = (labels, text)
                formatted[key] = cached
                append(f"{sample.name}{{{cached[1]}}} {_go_float(sample.value)}\n")
        self._formatted = formatted  # only what this scrape used: removed targets go
        return "".join(output).encode()


_OPENMETRICS_ONLY: Final = ("_created", "_gsum", "_gcount")
