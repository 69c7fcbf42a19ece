"""A loopback fleet of HTTPS sites served by Debian's nginx, for benchmarking the daemon at scale.

    from bench.fleet import Fleet, write_targets, validate_targets

    with Fleet(targets=1000, canaries=3, workdir=Path(tmp)) as fleet:
        write_targets(fleet, Path(tmp) / "targets.toml", interval_s=60, timeout_s=5)
        ...
        fleet.freeze()   # every nginx process SIGSTOPped: the kernel still accepts
        fleet.thaw()     # connections, nobody answers (tls_handshake, then connect_timeout)

Not part of the test run, and it imports nothing from tests/.

What the fleet is
-----------------
- **One nginx** (Debian's `nginx-light` or `nginx`, installed with apt-get when missing
  and we are root, as the Makefile does for its packages; otherwise a clear error). One
  worker process by default: C, event-driven, ECDSA P-256 handshakes, so the fleet costs a
  few percent of one core at 10,000 targets a minute and leaves the 2 cores to the daemon.
  Its CPU is measured (`Fleet.cpu_seconds`) so benches can show it. No access log, no
  keep-alive (every probe opens a fresh connection anyway), no TLS session tickets (neither
  govwatch nor blackbox_exporter resumes sessions, so every probe is a full handshake).
- **Addresses like a region's networks.** Each of the 13 region countries (AL BA BG GR HR
  ME MK MD RO RS SI TR XK) has its "government network" 127.10.<c>.0/24 with
  `addresses_per_country` (default 5) hosts, 127.10.<c>.1-5: 65 addresses in 13 /24
  prefixes, so the daemon's shared-infrastructure hints ("n of m affected targets share
  address prefix 127.10.1.0/24") see realistic prefixes. Canaries are elsewhere, on
  127.40.0.<k>. Every address listens on `ports_per_address` (default 2) ports, which
  keeps the listening sockets modest (68 x 2 = 136) whatever the number of targets.
- **One site per target**: `https://127.10.<c>.<h>:<port>/site/<NNNNN>/`, a distinct path
  per target, answering 200 with a small HTML page whose title is `site-NNNNN is up` (the
  target's `expect_text`); canaries answer `canary-<k> is up` on `/canary/<k>/`. Target i
  is in country i mod 13; within a country, targets go round its addresses, then its ports.
- **Real certificates**: a private CA made with trustme (ca.pem, the `ca_file` of the
  targets file and of blackbox_exporter's `tls_config`), issuing one ECDSA server
  certificate whose subjectAltNames are every IP address of the fleet. URLs are IP
  literals, so no DNS is involved and host names are checked against iPAddress SANs.

The DNS probe and IP literals
-----------------------------
`probes/dns.py` returns success at once for an IP-literal host (`is_ip_literal`: details
`addresses=(host,)`, no resolver lookups, no zone checks, no DNSSEC, resolve phase 0 s), and
`probes/resolve.py` hands IP literals straight back to the HTTP and TLS probes. No resolver
is ever contacted for this fleet, so a DNS server is not needed. Rather than `["system"]`
(/etc/resolv.conf, which may point off the machine), the targets file names
`Fleet.resolver`: a UDP socket this module binds on 127.53.53.53 that never answers and
counts what reaches it (`Fleet.dns_queries_seen`).
If a daemon ever did query it, its probes would time out and the count would say why; the
benches report the count, which should be 0. So a DNS probe here costs only the daemon's
own overhead per probe (scheduling, the core's step, the history row): a cheap success.

Freeze and thaw
---------------
`freeze()` sends SIGSTOP to nginx's process group (master and workers, canaries included:
one nginx serves them all). The kernel keeps completing TCP handshakes into the listen
backlog (511 per socket) while nothing answers, so probes fail with `tls_handshake`, then
`connect_timeout` once a backlog is full. `thaw()` sends SIGCONT. `stop()` always thaws
first, so a frozen nginx is never left behind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import trustme

from monitor.config import parse_duration
from monitor.countries import ISO_ALPHA2
from monitor.settings import SECTORS

REPO = Path(__file__).resolve().parents[1]
REGION_COUNTRIES = ("AL", "BA", "BG", "GR", "HR", "ME", "MK", "MD", "RO", "RS", "SI", "TR", "XK")
assert set(REGION_COUNTRIES) <= ISO_ALPHA2
SECTOR_CYCLE = tuple(sorted(SECTORS))
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESOLVER_SINK_ADDRESS = "127.53.53.53"
NGINX_PACKAGES = ("nginx-light", "nginx")


class FleetError(RuntimeError):
    """The fleet (or a tool it needs) cannot be had; the message says why and what to do."""


# --- Debian packages ------------------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """`name` on PATH or in the sbin directories (nginx lives in /usr/sbin)."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=f"{path}:{SBIN_PATH}" if path else SBIN_PATH)


def apt_install(packages: Sequence[str]) -> bool:
    """apt-get install the first of `packages` that installs; True if one did.

    Only as root. Services are not started: Debian's policy-rc.d convention (exit 101) is
    used for the duration when the machine has none, so installing nginx never leaves a
    server listening on 0.0.0.0:80.
    """
    if os.geteuid() != 0:
        return False
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text(
            "#!/bin/sh\n# temporary, bench/fleet.py: do not start services\nexit 101\n"
        )
        policy.chmod(0o755)
        made_policy = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for package in packages:
            print(f"installing Debian package {package} (apt-get) ...", file=sys.stderr)
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                return True
            tail = "\n".join(done.stderr.strip().splitlines()[-3:])
            print(f"apt-get install {package} failed:\n{tail}", file=sys.stderr)
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    return False


def ensure_binary(name: str, packages: Sequence[str]) -> str:
    """The path of `name`, installing one of `packages` first when missing (root only)."""
    found = find_binary(name)
    if found:
        return found
    if os.geteuid() != 0:
        raise FleetError(
            f"{name} is not installed and we are not root: "
            f"run `apt-get install -y {packages[0]}` first"
        )
    if not apt_install(packages) or not (found := find_binary(name)):
        raise FleetError(
            f"{name} could not be installed with apt-get ({' or '.join(packages)}); "
            "try `apt-get update` and run the bench again"
        )
    return found


def nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


# --- small shared helpers -------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int  # 0 when no answer came
    body: bytes
    seconds: float  # wall time of the whole GET, body included
    error: str | None = None


def http_get(url: str, timeout_s: float = 30.0) -> HttpAnswer:
    """A plain blocking GET (loopback only), never raising for a network failure."""
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = response.read()
            return HttpAnswer(response.status, body, time.perf_counter() - began)
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read(), time.perf_counter() - began, str(exc))
    except (OSError, urllib.error.URLError) as exc:
        return HttpAnswer(0, b"", time.perf_counter() - began, str(exc))


_SAMPLE = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(body: bytes, names: Iterable[str]) -> list[MetricSample]:
    """The samples of the metric families `names` in a Prometheus text exposition.

    Only lines starting with one of the names are parsed, so a 20 MB scrape costs the
    bench little.
    """
    prefixes = tuple(name.encode() for name in names)
    samples = []
    for line in body.splitlines():
        if not line.startswith(prefixes):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match[2].decode())) if match[2] else {}
        samples.append(MetricSample(match[1].decode(), labels, float(match[3])))
    return samples


def metric_sum(samples: Iterable[MetricSample], name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in [0, 1]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def git_revision() -> str:
    """The commit benchmarked, with `-dirty` when the working tree differs from it."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


# --- /proc accounting -----------------------------------------------------------------------


def _read_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (fields[0] is the state), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _read_stat(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`."""
    children = _children_map()
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop()
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def cpu_seconds(pid: int, *, include_children: bool = True) -> float:
    """utime+stime of `pid`; with children: plus its reaped children (cutime+cstime) and
    the utime+stime of its live descendants. 0 once it is gone."""
    fields = _read_stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if include_children:
        ticks += int(fields[13]) + int(fields[14])
        for child in descendants(pid):
            child_fields = _read_stat(child)
            if child_fields is not None:
                ticks += int(child_fields[11]) + int(child_fields[12])
    return ticks / CLK_TCK


def rss_bytes(pid: int) -> int:
    """VmRSS of `pid` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    """File descriptors `pid` has open (0 once it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def threads(pid: int) -> int:
    fields = _read_stat(pid)
    return int(fields[17]) if fields is not None else 0


# --- the fleet ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    url: str
    address: str
    port: int
    path: str
    expect_text: str
    country: str | None = None  # None for canaries
    sector: str | None = None


def country_addresses(country_index: int, per_country: int) -> list[str]:
    """A country's "government network": 127.10.<c>.1.. in its own /24 (c from 1)."""
    return [f"127.10.{country_index + 1}.{host + 1}" for host in range(per_country)]


def canary_address(index: int) -> str:
    return f"127.40.0.{index + 1}"


def layout(
    targets: int, canaries: int, ports: Sequence[int], addresses_per_country: int = 5
) -> tuple[list[Site], list[Site]]:
    """(targets, canaries): who lives where. Pure; see the module docstring."""
    if not 1 <= addresses_per_country <= 254:
        raise ValueError("addresses_per_country must be 1-254")
    if canaries > 254:
        raise ValueError("at most 254 canaries")
    width = max(5, len(str(max(targets - 1, 0))))
    pools = [country_addresses(c, addresses_per_country) for c in range(len(REGION_COUNTRIES))]
    sites = []
    for i in range(targets):
        c, k = i % len(REGION_COUNTRIES), i // len(REGION_COUNTRIES)
        address = pools[c][k % addresses_per_country]
        port = ports[(k // addresses_per_country) % len(ports)]
        name = f"site-{i:0{width}d}"
        path = f"/site/{i:0{width}d}/"
        sites.append(
            Site(
                name=name,
                url=f"https://{address}:{port}{path}",
                address=address,
                port=port,
                path=path,
                expect_text=f"{name} is up",
                country=REGION_COUNTRIES[c],
                sector=SECTOR_CYCLE[i % len(SECTOR_CYCLE)],
            )
        )
    canary_sites = [
        Site(
            name=f"canary-{j}",
            url=f"https://{canary_address(j)}:{ports[0]}/canary/{j}/",
            address=canary_address(j),
            port=ports[0],
            path=f"/canary/{j}/",
            expect_text=f"canary-{j} is up",
        )
        for j in range(canaries)
    ]
    return sites, canary_sites


class _ResolverSink:
    """A UDP socket that plays a resolver nobody should ever ask: it counts, never answers."""

    def __init__(self, address: str = RESOLVER_SINK_ADDRESS) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, 0))
        self._sock.settimeout(0.5)
        self.address = f"{address}:{self._sock.getsockname()[1]}"
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resolver sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


@dataclass
class Fleet:
    """N target sites plus K canaries behind one nginx on loopback (see the module docstring)."""

    targets: int
    workdir: Path
    canaries: int = 3
    addresses_per_country: int = 5
    ports_per_address: int = 2
    workers: int = 1
    sites: list[Site] = field(default_factory=list, init=False)
    canary_sites: list[Site] = field(default_factory=list, init=False)
    ports: list[int] = field(default_factory=list, init=False)
    nginx: str = field(default="", init=False)
    version: str = field(default="", init=False)
    frozen: bool = field(default=False, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _sink: _ResolverSink | None = field(default=None, init=False, repr=False)
    _modules: str | None = field(default=None, init=False, repr=False)  # `nginx -V`

    # -- what the others need --

    @property
    def count(self) -> int:
        """The number of targets (canaries not included)."""
        return self.targets

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    def targets_toml(
        self,
        interval: str = "60s",
        timeout: str = "5s",
        tls_interval: str = "10m",
        concurrency: int | None = None,
    ) -> Path:
        """WORKDIR/targets.toml for this fleet (durations as in targets.toml), validated."""
        path = write_targets(
            self,
            self.workdir / "targets.toml",
            interval_s=parse_duration(interval),
            timeout_s=parse_duration(timeout),
            tls_interval_s=parse_duration(tls_interval),
            concurrency=concurrency,
        )
        validate_targets(path)
        return path

    @property
    def addresses(self) -> list[str]:
        return sorted({site.address for site in [*self.sites, *self.canary_sites]})

    @property
    def all_addresses(self) -> list[str]:
        """Every address nginx listens on (each country's pool and every canary)."""
        countries = [
            address
            for c in range(len(REGION_COUNTRIES))
            for address in country_addresses(c, self.addresses_per_country)
        ]
        return countries + [canary_address(j) for j in range(self.canaries)]

    @property
    def listeners(self) -> int:
        return len(self.all_addresses) * len(self.ports)

    @property
    def resolver(self) -> str:
        """The `resolvers` entry for the targets file: a sink that never answers."""
        assert self._sink is not None, "start() the fleet first"
        return self._sink.address

    @property
    def dns_queries_seen(self) -> int:
        return self._sink.queries if self._sink is not None else 0

    @property
    def pid(self) -> int:
        assert self._process is not None, "start() the fleet first"
        return self._process.pid

    def pids(self) -> list[int]:
        """nginx's master and workers."""
        return [self.pid, *descendants(self.pid)] if self._process is not None else []

    def cpu_seconds(self) -> float:
        """CPU used by nginx so far (master, workers, reaped workers)."""
        return cpu_seconds(self.pid) if self._process is not None else 0.0

    def rss_bytes(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids())

    # -- lifecycle --

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        self.nginx = ensure_binary("nginx", NGINX_PACKAGES)
        self.version = nginx_version(self.nginx)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_certificates()
        self._sink = _ResolverSink()
        problem = ""
        for _ in range(attempts):  # ports are picked free on 127.0.0.1; another address may differ
            self.ports = self._pick_ports()
            self.sites, self.canary_sites = layout(
                self.targets, self.canaries, self.ports, self.addresses_per_country
            )
            conf = self._write_config()
            problem = self._launch(conf)
            if not problem:
                return
        self.stop()
        raise FleetError(f"nginx did not start: {problem}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            # Workers whose master died first would linger in its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.frozen = False
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def freeze(self) -> None:
        """SIGSTOP every nginx process: connections are accepted by the kernel, never answered."""
        os.killpg(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)
        self.frozen = False

    # -- internals --

    def _pick_ports(self) -> list[int]:
        ports: list[int] = []
        while len(ports) < self.ports_per_address:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return ports

    def _write_certificates(self) -> None:
        ca = trustme.CA(organization_name="govwatch bench fleet")
        # Only the addresses matter; they are known before the ports are.
        addresses = self.all_addresses
        leaf = ca.issue_cert(*addresses, organization_name="govwatch bench fleet")
        ca.cert_pem.write_to_path(str(self.ca_file))
        leaf.private_key_pem.write_to_path(str(self.workdir / "server.key"))
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        (self.workdir / "server.pem").write_bytes(chain)

    def _write_config(self) -> Path:
        work = self.workdir
        (work / "tmp").mkdir(exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            # Workers drop to nobody (the master keeps the keys it read as root).
            try:
                nobody = pwd.getpwnam("nobody")
                import grp

                user = f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"
            except KeyError:
                user = "user root root;"
        listens = "\n".join(
            f"        listen {address}:{port} ssl;"
            for address in self.all_addresses
            for port in self.ports
        )
        temp_paths = "\n".join(
            f"    {kind}_temp_path {work}/tmp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            if self._has_module(kind)
        )
        conf = f"""# written by bench/fleet.py
{user}
worker_processes {self.workers};
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;

events {{
    worker_connections 16384;
}}

http {{
    access_log off;
    server_tokens off;
    keepalive_timeout 0;
{temp_paths}
    ssl_certificate {work}/server.pem;
    ssl_certificate_key {work}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;

    server {{
{listens}
        default_type text/html;
        location ~ "^/site/(?<id>[0-9]+)/$" {{
            return 200 "<!doctype html><html><head><title>site-$id is up</title></head><body><h1>site-$id is up</h1><p>A healthy site of the govwatch bench fleet.</p></body></html>\\n";
        }}
        location ~ "^/canary/(?<id>[0-9]+)/$" {{
            return 200 "<!doctype html><html><head><title>canary-$id is up</title></head><body><h1>canary-$id is up</h1></body></html>\\n";
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""
        path = work / "nginx.conf"
        path.write_text(conf)
        return path

    def _has_module(self, kind: str) -> bool:
        """Whether nginx was built with the module owning `<kind>_temp_path`."""
        if kind == "client_body":
            return True
        if self._modules is None:
            done = subprocess.run([self.nginx, "-V"], capture_output=True, text=True)
            self._modules = done.stderr + done.stdout
        return f"--without-http_{kind}_module" not in self._modules

    def _launch(self, conf: Path) -> str:
        """Start nginx on `conf`; '' when every listener accepts, else why not."""
        error_log = self.workdir / "nginx-error.log"
        command = [self.nginx, "-p", str(self.workdir), "-e", str(error_log), "-c", str(conf)]
        check = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            raise FleetError(f"nginx rejects its configuration: {check.stderr.strip()}")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: freeze/thaw/stop reach every worker
        )
        deadline = time.monotonic() + 15
        pending = [(address, port) for address in self.all_addresses for port in self.ports]
        while pending and time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            still = []
            for address, port in pending:
                try:
                    socket.create_connection((address, port), timeout=1).close()
                except OSError:
                    still.append((address, port))
            pending = still
            if pending:
                time.sleep(0.1)
        if not pending and self._process.poll() is None:
            return ""
        log_tail = ""
        with contextlib.suppress(OSError):
            log_tail = "; ".join(error_log.read_text().strip().splitlines()[-3:])
        self._kill_nginx()
        return log_tail or f"{len(pending)} listeners not accepting"

    def _kill_nginx(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def running_fleet(
    workdir: Path, count: int, canaries: int = 3, *, workers: int = 1
) -> Iterator[Fleet]:
    """A started Fleet of `count` targets, stopped (and thawed) on the way out."""
    fleet = Fleet(targets=count, workdir=workdir, canaries=canaries, workers=workers)
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


# --- the targets file ----------------------------------------------------------------------


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _duration(seconds: float) -> str:
    """Seconds as a targets.toml duration: 3600 -> "1h", 600 -> "10m", 2.5 -> "2500ms"."""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def write_targets(
    fleet: Fleet,
    path: Path,
    *,
    interval_s: float = 60.0,
    timeout_s: float = 5.0,
    tls_interval_s: float = 600.0,
    concurrency: int | None = None,
) -> Path:
    """A govwatch targets.toml for `fleet` (see README "Configuration")."""
    lines = [
        f"# written by bench/fleet.py: {fleet.targets} targets, {fleet.canaries} canaries",
        "[monitor]",
        f"interval = {_toml_string(_duration(interval_s))}",
        f"timeout = {_toml_string(_duration(timeout_s))}",
        f"tls_interval = {_toml_string(_duration(tls_interval_s))}",
        "# IP-literal URLs: no probe ever asks a resolver; this one never answers and counts.",
        f"resolvers = [{_toml_string(fleet.resolver)}]",
        f"ca_file = {_toml_string(str(fleet.ca_file))}",
    ]
    if concurrency is not None:
        lines.append(f"concurrency = {concurrency}")
    for site in fleet.canary_sites:
        lines += [
            "",
            "[[canary]]",
            f"name = {_toml_string(site.name)}",
            f"url = {_toml_string(site.url)}",
            f"expect_text = {_toml_string(site.expect_text)}",
        ]
    for site in fleet.sites:
        assert site.country is not None and site.sector is not None
        lines += [
            "",
            "[[target]]",
            f"name = {_toml_string(site.name)}",
            f"url = {_toml_string(site.url)}",
            f"country = {_toml_string(site.country)}",
            f"sector = {_toml_string(site.sector)}",
            f"expect_text = {_toml_string(site.expect_text)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def govwatch_command() -> list[str]:
    """How to run `govwatch`: the venv's script next to this Python, else `python -m monitor`."""
    script = Path(sys.executable).with_name("govwatch")
    if script.exists():
        return [str(script)]
    script = REPO / ".venv" / "bin" / "govwatch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "monitor"]


def validate_targets(path: Path) -> str:
    """`govwatch validate FILE`: its summary line, or FleetError with its errors."""
    done = subprocess.run(
        [*govwatch_command(), "validate", str(path)], capture_output=True, text=True, cwd=REPO
    )
    if done.returncode != 0:
        raise FleetError(f"govwatch validate {path} failed:\n{done.stderr.strip()}")
    return done.stdout.strip()


def check_site(site: Site, ca_file: Path, timeout_s: float = 5.0) -> bool:
    """One verified HTTPS GET of `site`: does it answer 200 with its expected text?"""
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(site.url, timeout=timeout_s, context=context) as response:
            return response.status == 200 and site.expect_text.encode() in response.read()
    except (OSError, urllib.error.URLError):
        return False


# --- the daemon under test -----------------------------------------------------------------


@dataclass
class GovwatchDaemon:
    """`govwatch run FILE --listen 127.0.0.1:PORT --db WORKDIR/govwatch.sqlite3` as a subprocess,
    its output in WORKDIR/govwatch.log."""

    targets_file: Path
    workdir: Path
    extra_args: Sequence[str] = ()
    port: int = 0
    started_at: float = 0.0  # unix time of the start
    ready_after_s: float = float("nan")  # start -> /healthz answering
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "govwatch.log"

    @property
    def db_path(self) -> Path:
        return self.workdir / "govwatch.sqlite3"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def command(self) -> list[str]:
        return [
            *govwatch_command(),
            "run",
            str(self.targets_file),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--db",
            str(self.db_path),
            *self.extra_args,
        ]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, ready_timeout_s: float = 180.0) -> None:
        self.port = self.port or free_port()
        self.started_at = time.time()
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops it in order
            )
        while time.monotonic() - began < ready_timeout_s:
            if self._process.poll() is not None:
                raise FleetError(
                    f"govwatch run exited with {self._process.returncode} before serving:\n"
                    + self.log_tail()
                )
            if http_get(self.url("/healthz"), timeout_s=5).status in (200, 503):
                self.ready_after_s = time.monotonic() - began
                return
            time.sleep(0.2)
        self.stop()
        raise FleetError(
            f"govwatch run did not serve within {ready_timeout_s:.0f} s:\n" + self.log_tail()
        )

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM, then SIGKILL after `timeout_s`: (exit code, seconds to exit)."""
        process, self._process = self._process, None
        if process is None:
            return None, 0.0
        began = time.monotonic()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        return process.returncode, time.monotonic() - began

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_problems(self) -> LogProblems:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return LogProblems(0, 0, 0, [])
        lines = text.splitlines()
        errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
        tracebacks = sum(line.startswith("Traceback") for line in lines)
        warnings = sum(" WARNING " in line for line in lines)
        interesting = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
        return LogProblems(len(errors), tracebacks, warnings, interesting[:10])


@dataclass(frozen=True, slots=True)
class LogProblems:
    errors: int  # lines logged at ERROR (or CRITICAL)
    tracebacks: int
    warnings: int
    first: list[str]  # the first ERROR/Traceback lines, for the report


@contextlib.contextmanager
def running(daemon: GovwatchDaemon) -> Iterator[GovwatchDaemon]:
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
