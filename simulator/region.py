"""The simulated region's topology and fault vocabulary (pure: no sockets, no clock).

The sites are govwatch's own catalogue, targets.toml's targets (see `catalogue`), plus
a few the scenarios need. The topology mirrors how the real region shares infrastructure, so that the
daemon's "what do the failing targets share" hints have something to find:

* each country's government sites sit on one **network**: one /24 address prefix
  (AL: 127.10.1.0/24), one name-server pair (AL: ns11/ns12.akshi.al.test) and one
  certificate issuer;
* a few sites per country are hosted on their own (a municipality, a fund), on
  127.30.<country>.0/24 with other name servers: they survive the country's
  network going dark, as e-femijet.tirana.al did not depend on AKSHI;
* Moldova puts some sites on a shared **hosting provider** (host.md, 127.20.1.0/24),
  as the 2025 election-time block of host.md took ~4,000 sites offline;
* Greek services **depend on one login** (TAXISnet, login.gsis.gr.test): when the
  login fails, the sites behind it answer 502;
* **canaries** sit outside the region (127.40.0.0/24) to tell a dark region from a
  monitor that lost its uplink.

Vantages. A monitor looking from elsewhere sees other addresses: every vantage
has its own resolver address and its own copy of every site's address (the home
vantage on 127.10.x.y, the next one 60 higher in the second octet: 127.70.x.y).
The same names resolve, per vantage, to that vantage's copy, so a fault can be
scoped to one vantage ("blocked from abroad") while the other keeps working.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType

from monitor.config import load_config
from monitor.countries import country_name
from probes.results import Reason

HOME_VANTAGE = "home"
MAX_VANTAGES = 3
_VANTAGE_OCTET_STEP = 60  # second-octet offset between vantages: 10 -> 70 -> 130
_GOV_OCTET = 10
_HOSTING_OCTET = 20
_OWN_OCTET = 30
_CANARY_OCTET = 40
_RESOLVER_OCTET = 53
_FIRST_HOST = 10  # sites take .10, .11, ...; name servers .53 and .54
_NAMESERVER_HOSTS = (53, 54)
_LAST_HOST = 254
# Every site of a country can sit on its government network's /24: .10-.254 but .53/.54.
MAX_PER_COUNTRY = _LAST_HOST - _FIRST_HOST + 1 - len(_NAMESERVER_HOSTS)
# Where the tamper faults point: an "attacker" network in another /16 than any site's,
# its name servers (the `ns_change` fault's new NS set) at .53/.54 of its first /24 and
# hijacked addresses (`dns_hijack`) from .10. Shifted per vantage like every address.
_ATTACKER_OCTET = 66
ATTACKER_PREFIX = ipaddress.IPv4Network(f"127.{_ATTACKER_OCTET}.0.0/16")
HIJACK_ZONE = "hijack.test"
HIJACK_NAMESERVERS: Mapping[str, ipaddress.IPv4Address] = MappingProxyType(
    {
        f"ns{n}.{HIJACK_ZONE}": ATTACKER_PREFIX.network_address + host
        for n, host in enumerate(_NAMESERVER_HOSTS, start=1)
    }
)
HIJACK_FIRST_ADDRESS = ATTACKER_PREFIX.network_address + _FIRST_HOST
OTHER_CA_ORGANIZATION = "govwatch simulator other CA"
PUBLIC_ISSUER = "Simulated Public CA"
CANARY_ISSUER = "Simulated Global CA"
LOGIN_FAILURE_STATUS = 502  # what a site answers when the login behind it fails
# The probe timing the generated targets files ask for (runner.Timing): quick rehearsals.
REHEARSAL_INTERVAL = "10s"
REHEARSAL_TLS_INTERVAL = "1m"
REHEARSAL_TIMEOUT = "2s"


# --- catalogue -----------------------------------------------------------------
#
# The sites are the shipped catalogue's: each country's targets in targets.toml (host and
# sector). What the simulator adds is its own structure, in the tables below: each
# country's network (prefix, name servers, issuer), the sites hosted off it, the Greek
# login and the sites behind it, and the canaries.

# targets.toml at the repository root, the parent of this package: the simulator runs from
# a checkout (`make demo`, an editable install); a copy shipped as package data would drift.
CATALOGUE_FILE = Path(__file__).resolve().parent.parent / "targets.toml"


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One site the simulator can stand up. `host` is the real one; `.test` is appended."""

    host: str
    sector: str
    title: str  # shown on the page and used as the target's expect_text
    network: str = "gov"  # "gov", "own", or a hosting provider's key
    is_login: bool = False  # the country's shared login dependency
    uses_login: bool = False  # answers 502 while the login is failing


@dataclass(frozen=True, slots=True)
class CountryInfra:
    """How a country's government network is named, and which of its sites stand apart."""

    ns_domain: str  # "akshi.al" -> ns11.akshi.al.test (with ns_labels)
    issuer: str
    ns_labels: tuple[str, str] = ("ns1", "ns2")
    # Hosted independently (a municipality, a registry, a parliament): it survives the
    # government network going dark, as e-femijet.tirana.al did not depend on AKSHI.
    own_hosted: str | None = None
    # Brought to the front of the country's sites: a built-in scenario names them even
    # at 4 sites per country, and targets.toml lists them further down.
    featured: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostingProvider:
    key: str
    index: int  # third octet of its prefix
    ns_domain: str
    issuer: str
    sites: tuple[str, ...]  # the hosts it serves


@dataclass(frozen=True, slots=True)
class Login:
    """A country's shared login: while it fails, the sites behind it answer 502."""

    host: str
    users: tuple[str, ...]  # the sites behind it


# Country index = third octet of its prefixes; stable whichever countries are chosen.
COUNTRY_INDEX: Mapping[str, int] = MappingProxyType(
    {
        cc: i
        for i, cc in enumerate(
            ("AL", "BA", "BG", "GR", "HR", "MD", "ME", "MK", "RO", "RS", "SI", "TR", "XK"), start=1
        )
    }
)

_I = CountryInfra
COUNTRY_INFRA: Mapping[str, CountryInfra] = MappingProxyType(
    {
        "AL": _I("akshi.al", "AKSHI CA", ("ns11", "ns12"), own_hosted="e-femijet.tirana.al"),
        "BA": _I("gov.ba", "BA Government CA", own_hosted="uino.gov.ba"),
        "BG": _I(
            "egov.bg", "BG e-Government CA", own_hosted="parliament.bg", featured=("brra.bg",)
        ),
        "GR": _I("syzefxis.gr", "GR Syzefxis CA", own_hosted="primeminister.gr"),
        "HR": _I("gov.hr", "HR Government CA", own_hosted="eojn.hr"),
        "MD": _I("stisc.md", "MD STISC CA"),  # its exceptions are on host.md
        "ME": _I(
            "gov.me", "ME Government CA", own_hosted="parliament.me", featured=("tax.gov.me",)
        ),
        "MK": _I("gov.mk", "MK Government CA", own_hosted="crm.com.mk"),
        "RO": _I("sts.ro", "RO STS CA", own_hosted="ghiseul.ro"),
        "RS": _I("ite.gov.rs", "RS ITE CA", own_hosted="rgz.gov.rs"),
        "SI": _I("gov.si", "SI Government CA", own_hosted="predsednica-slo.si"),
        "TR": _I("turksat.tr", "TR Turksat CA", own_hosted="usom.gov.tr"),
        "XK": _I("rks-gov.net", "XK ASHI CA", own_hosted="mfa-ks.net"),
    }
)

# Moldova puts some sites on a shared hosting provider, as the 2025 election-time block
# of host.md took ~4,000 sites offline.
HOSTING_PROVIDERS: Mapping[str, HostingProvider] = MappingProxyType(
    {
        "host.md": HostingProvider(
            "host.md",
            1,
            "host.md",
            "host.md CA",
            sites=("cec.md", "fisc.md", "cert.gov.md", "parlament.md", "presedinte.md"),
        )
    }
)

# Greek services depend on one login (TAXISnet, as in the November 2022 attack).
LOGINS: Mapping[str, Login] = MappingProxyType(
    {"GR": Login("login.gsis.gr", ("gov.gr", "aade.gr", "efka.gov.gr", "ktimatologio.gr"))}
)

# The only sites that are not targets.toml's, as (host, sector), because scenarios need them:
# - GR: targets.toml monitors gsis.gr and gov.gr, but greece-2022 (and tour) fail the login
#   itself and expect the services behind it to fail with it;
# - MD: host.md's two other sites, so that half of Moldova's sites are on host.md at 8 or 10
#   sites per country too (`govwatch simulate` runs scenarios at 8 or more), and blocking it
#   stays the country outage moldova-2025 (and tour) expect.
EXTRA_SITES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "GR": (
            ("login.gsis.gr", "identity"),
            ("aade.gr", "tax"),
            ("efka.gov.gr", "economy"),
            ("ktimatologio.gr", "cadastre"),
        ),
        "MD": (("parlament.md", "parliament"), ("presedinte.md", "president")),
    }
)

_E = CatalogueEntry
CANARY_CATALOGUE: tuple[CatalogueEntry, ...] = (
    _E("quad9.canary", "agency", "Quad9 canary", network="canary"),
    _E("cloudflare.canary", "agency", "Cloudflare canary", network="canary"),
    _E("google.canary", "agency", "Google canary", network="canary"),
)

DEFAULT_COUNTRIES = ("AL", "BG", "GR", "MD", "ME", "MK", "SI", "XK")
DEFAULT_PER_COUNTRY = 8
SUPPORTED_COUNTRIES = tuple(COUNTRY_INDEX)


def _entry(country: str, host: str, sector: str, title: str) -> CatalogueEntry:
    """A site with its place in the simulator's structure."""
    infra = COUNTRY_INFRA[country]
    login = LOGINS.get(country)
    network = "own" if host == infra.own_hosted else "gov"
    for provider in HOSTING_PROVIDERS.values():
        if host in provider.sites:
            network = provider.key
    return CatalogueEntry(
        host,
        sector,
        title,
        network=network,
        is_login=login is not None and host == login.host,
        uses_login=login is not None and host in login.users,
    )


def _layout(country: str, entries: Sequence[CatalogueEntry]) -> tuple[CatalogueEntry, ...]:
    """A country's sites in the order a region takes them (N per country: the first N).

    targets.toml's order, with the exceptions early enough for a small region to have
    them: the login and the sites behind it first, then the featured sites; the own-hosted
    site 4th (3 of 4 sites down is a country outage, and one survives); a hosting
    provider's sites every other place from the 2nd (half of 6 sites fail with it).
    """
    infra = COUNTRY_INFRA[country]
    login = LOGINS.get(country)
    front = (*((login.host, *login.users) if login else ()), *infra.featured)
    rank = {host: index for index, host in enumerate(front)}
    order = sorted(
        (e for e in entries if e.network == "gov"), key=lambda e: rank.get(e.host, len(rank))
    )
    hosted = [e for e in entries if e.network in HOSTING_PROVIDERS]
    hosted.sort(key=lambda e: HOSTING_PROVIDERS[e.network].sites.index(e.host))
    for index, entry in enumerate(hosted):
        order.insert(2 * index + 1, entry)
    for entry in entries:
        if entry.network == "own":
            order.insert(3, entry)
    return tuple(order)


@cache
def catalogue(path: Path = CATALOGUE_FILE) -> Mapping[str, tuple[CatalogueEntry, ...]]:
    """Every supported country's sites, from targets.toml, in layout order (see `_layout`).

    A page shows the target's expect_text, or else its host.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"the simulator's sites come from govwatch's catalogue {path}, which is missing: "
            "run the simulator from a govwatch checkout (pip install -e .)"
        )
    config = load_config(path)
    entries: dict[str, list[CatalogueEntry]] = {country: [] for country in COUNTRY_INFRA}
    for target in config.targets:
        if target.country in entries:
            title = target.expect_text or target.name
            entries[target.country].append(
                _entry(target.country, target.host, target.sector, title)
            )
    for country, extras in EXTRA_SITES.items():
        entries[country] += [_entry(country, host, sector, host) for host, sector in extras]
    return MappingProxyType({c: _layout(c, e) for c, e in entries.items()})


# --- topology ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Network:
    """Infrastructure a group of sites shares: prefix, name servers, issuer."""

    key: str  # "AL-gov", "AL-own", "host.md", "canary"
    description: str
    prefix: ipaddress.IPv4Network  # the home vantage's prefix
    nameservers: tuple[str, ...]
    issuer: str

    def nameserver_address(self, nameserver: str) -> ipaddress.IPv4Address:
        index = self.nameservers.index(nameserver)
        return self.prefix.network_address + _NAMESERVER_HOSTS[index]


@dataclass(frozen=True, slots=True)
class Site:
    host: str  # "e-albania.al.test": the name, the URL host and the target name
    country: str | None  # None for canaries
    sector: str
    title: str
    network: str  # Network.key
    address: ipaddress.IPv4Address  # in the home vantage
    depends_on: str | None = None  # host of the login this site needs

    @property
    def is_canary(self) -> bool:
        return self.country is None

    @property
    def zone(self) -> str:
        """Every site is its own zone (as e-albania.al is), served by its network's name servers."""
        return self.host


def shift_to_vantage(address: ipaddress.IPv4Address, vantage_index: int) -> ipaddress.IPv4Address:
    """The copy of a home-vantage address that vantage number `vantage_index` sees."""
    return address + (vantage_index * _VANTAGE_OCTET_STEP << 16)


@dataclass(frozen=True, slots=True)
class Region:
    """Who is where. Built by `build_region`; immutable."""

    sites: tuple[Site, ...]
    networks: Mapping[str, Network]
    vantages: tuple[str, ...] = (HOME_VANTAGE,)
    _by_host: Mapping[str, Site] = field(default_factory=dict, repr=False)
    _dependants: Mapping[str, tuple[Site, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_host", MappingProxyType({s.host: s for s in self.sites}))
        dependants: dict[str, list[Site]] = {}
        for site in self.sites:
            if site.depends_on is not None:
                dependants.setdefault(site.depends_on, []).append(site)
        object.__setattr__(
            self, "_dependants", MappingProxyType({k: tuple(v) for k, v in dependants.items()})
        )

    @property
    def countries(self) -> tuple[str, ...]:
        return tuple(sorted({s.country for s in self.sites if s.country}))

    @property
    def targets(self) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if not s.is_canary)

    @property
    def canaries(self) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if s.is_canary)

    @property
    def nameservers(self) -> tuple[str, ...]:
        return tuple(ns for net in self.networks.values() for ns in net.nameservers)

    def site(self, host: str) -> Site:
        try:
            return self._by_host[host]
        except KeyError:
            raise LookupError(f"no simulated site {host!r}") from None

    def vantage_index(self, vantage: str) -> int:
        try:
            return self.vantages.index(vantage)
        except ValueError:
            raise LookupError(
                f"no vantage {vantage!r} (this region has: {', '.join(self.vantages)})"
            ) from None

    def address(self, site: Site, vantage: str) -> ipaddress.IPv4Address:
        return shift_to_vantage(site.address, self.vantage_index(vantage))

    def resolver_address(self, vantage: str) -> ipaddress.IPv4Address:
        home = ipaddress.IPv4Address(f"127.{_RESOLVER_OCTET}.0.1")
        return shift_to_vantage(home, self.vantage_index(vantage))

    def nameserver_addresses(self, vantage: str) -> dict[str, ipaddress.IPv4Address]:
        index = self.vantage_index(vantage)
        return {
            ns: shift_to_vantage(net.nameserver_address(ns), index)
            for net in self.networks.values()
            for ns in net.nameservers
        }

    def dependants(self, host: str) -> tuple[Site, ...]:
        return self._dependants.get(host, ())

    def select(self, scope: Scope, selector: str) -> tuple[Site, ...]:
        """The sites a fault `scope`+`selector` addresses. Raises LookupError if none."""
        sites: Iterable[Site]
        if scope is Scope.SITE:
            sites = [self.site(selector)]
        elif scope is Scope.COUNTRY:
            code = selector.upper()
            sites = [s for s in self.sites if s.country == code]
        elif scope is Scope.NAMESERVER:
            sites = [s for s in self.sites if selector in self.networks[s.network].nameservers]
        elif scope is Scope.PREFIX:
            try:
                prefix = ipaddress.IPv4Network(selector, strict=False)
            except ValueError as exc:
                raise LookupError(f"prefix {selector!r}: {exc}") from None
            sites = [s for s in self.sites if s.address in prefix]
        elif scope is Scope.NETWORK:
            sites = [s for s in self.sites if s.network == selector]
        elif scope is Scope.CANARIES:
            sites = [s for s in self.canaries if selector in ("*", "", s.host)]
        else:  # Scope.ALL: the monitor's uplink is gone, so every site is
            sites = self.sites
        chosen = tuple(sites)
        if not chosen:
            raise LookupError(f"{scope} {selector!r} matches no simulated site")
        return chosen

    def describe_scopes(self) -> dict[str, list[str]]:
        """Every selector each scope accepts here (for the control API and the CLI)."""
        return {
            Scope.SITE: [s.host for s in self.sites],
            Scope.COUNTRY: list(self.countries),
            Scope.NAMESERVER: list(self.nameservers),
            Scope.PREFIX: sorted({str(n.prefix) for n in self.networks.values()}),
            Scope.NETWORK: list(self.networks),
            Scope.CANARIES: ["*", *(s.host for s in self.canaries)],
            Scope.ALL: ["*"],
        }


class Scope(StrEnum):
    SITE = "site"
    COUNTRY = "country"
    NAMESERVER = "nameserver"
    PREFIX = "prefix"
    NETWORK = "network"  # a country's government network, or a hosting provider
    CANARIES = "canaries"
    ALL = "all"  # every site and canary: the monitor's own uplink is cut


def _test_name(name: str) -> str:
    return f"{name}.test"


def _gov_network(country: str) -> Network:
    infra = COUNTRY_INFRA[country]
    index = COUNTRY_INDEX[country]
    return Network(
        key=f"{country}-gov",
        description=f"{country_name(country)} government network",
        prefix=ipaddress.IPv4Network(f"127.{_GOV_OCTET}.{index}.0/24"),
        nameservers=tuple(_test_name(f"{label}.{infra.ns_domain}") for label in infra.ns_labels),
        issuer=infra.issuer,
    )


def _own_network(country: str) -> Network:
    index = COUNTRY_INDEX[country]
    domain = f"isp.{country.lower()}"
    return Network(
        key=f"{country}-own",
        description=f"independently hosted sites in {country_name(country)}",
        prefix=ipaddress.IPv4Network(f"127.{_OWN_OCTET}.{index}.0/24"),
        nameservers=(_test_name(f"ns1.{domain}"), _test_name(f"ns2.{domain}")),
        issuer=PUBLIC_ISSUER,
    )


def _hosting_network(provider: HostingProvider) -> Network:
    return Network(
        key=provider.key,
        description=f"shared hosting provider {provider.key}",
        prefix=ipaddress.IPv4Network(f"127.{_HOSTING_OCTET}.{provider.index}.0/24"),
        nameservers=(
            _test_name(f"ns1.{provider.ns_domain}"),
            _test_name(f"ns2.{provider.ns_domain}"),
        ),
        issuer=provider.issuer,
    )


def _canary_network() -> Network:
    return Network(
        key="canary",
        description="control sites outside the region",
        prefix=ipaddress.IPv4Network(f"127.{_CANARY_OCTET}.0.0/24"),
        nameservers=(_test_name("ns1.canary"), _test_name("ns2.canary")),
        issuer=CANARY_ISSUER,
    )


def _country_entries(country: str, count: int) -> list[CatalogueEntry]:
    """The first `count` catalogue entries, padded with generated ministries if needed."""
    entries = list(catalogue()[country][:count])
    for number in range(len(entries) + 1, count + 1):
        domain = f"gov.{country.lower()}"
        entries.append(_E(f"service{number}.{domain}", "agency", f"{country} service {number}"))
    return entries


def build_region(
    countries: Sequence[str] = DEFAULT_COUNTRIES,
    per_country: int = DEFAULT_PER_COUNTRY,
    vantages: Sequence[str] = (HOME_VANTAGE,),
    canaries: int = len(CANARY_CATALOGUE),
) -> Region:
    """Lay out `per_country` sites for each country (catalogue order) plus canaries."""
    codes = [c.strip().upper() for c in countries if c.strip()]
    unknown = [c for c in codes if c not in COUNTRY_INDEX]
    if unknown:
        raise ValueError(
            f"unsupported countries {', '.join(unknown)} (supported: {', '.join(COUNTRY_INDEX)})"
        )
    if not codes:
        raise ValueError("at least one country is needed")
    if len(set(codes)) != len(codes):
        raise ValueError(f"countries repeated: {', '.join(codes)}")
    if not 1 <= per_country <= MAX_PER_COUNTRY:
        raise ValueError(f"per_country must be 1-{MAX_PER_COUNTRY}, got {per_country}")
    if not 1 <= len(vantages) <= MAX_VANTAGES or len(set(vantages)) != len(vantages):
        raise ValueError(f"between 1 and {MAX_VANTAGES} distinct vantages, got {list(vantages)}")
    if not 0 <= canaries <= len(CANARY_CATALOGUE):
        raise ValueError(f"canaries must be 0-{len(CANARY_CATALOGUE)}, got {canaries}")

    networks: dict[str, Network] = {}
    next_host: dict[str, int] = {}
    sites: list[Site] = []

    def place(entry: CatalogueEntry, country: str | None, network: Network) -> Site:
        networks.setdefault(network.key, network)
        offset = next_host.get(network.key, _FIRST_HOST)
        next_host[network.key] = offset + 1
        if offset in _NAMESERVER_HOSTS:  # keep .53/.54 for the name servers
            offset = _NAMESERVER_HOSTS[-1] + 1
            next_host[network.key] = offset + 1
        return Site(
            host=_test_name(entry.host),
            country=country,
            sector=entry.sector,
            title=entry.title,
            network=network.key,
            address=network.prefix.network_address + offset,
        )

    for country in sorted(codes, key=COUNTRY_INDEX.__getitem__):
        entries = _country_entries(country, per_country)
        login = next((_test_name(e.host) for e in entries if e.is_login), None)
        for entry in entries:
            if entry.network == "gov":
                network = _gov_network(country)
            elif entry.network == "own":
                network = _own_network(country)
            else:
                network = _hosting_network(HOSTING_PROVIDERS[entry.network])
            site = place(entry, country, network)
            if entry.uses_login and login is not None:
                site = replace(site, depends_on=login)
            sites.append(site)
    for entry in CANARY_CATALOGUE[:canaries]:
        sites.append(place(entry, None, _canary_network()))
    return Region(sites=tuple(sites), networks=MappingProxyType(networks), vantages=tuple(vantages))


# --- faults --------------------------------------------------------------------


class CertVariant(StrEnum):
    """Which certificate a site presents (simulator.pki issues each one)."""

    VALID = "valid"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    WRONG_NAME = "wrong_name"
    OTHER_CA = "other_ca"  # a new key, issued by the simulator's second root CA
    RENEWED = "renewed"  # a new key from the site's usual issuer, fresh 90 days


class FaultLayer(StrEnum):
    WEB = "web"  # what the HTTP(S) server does
    TLS = "tls"  # which certificate it presents
    DNS = "dns"  # what the resolver answers for the name


@dataclass(frozen=True, slots=True)
class FaultMode:
    name: str
    layer: FaultLayer
    description: str
    # What govwatch's HTTP probe of an https:// site reports (None: it passes).
    http_reason: Reason | None


_MODES = (
    FaultMode("refuse", FaultLayer.WEB, "connections refused (RST)", Reason.CONNECT_REFUSED),
    FaultMode(
        "drop",
        FaultLayer.WEB,
        "packets dropped: connections time out (a cut or filtered network)",
        Reason.CONNECT_TIMEOUT,
    ),
    FaultMode(
        "blackhole",
        FaultLayer.WEB,
        "TCP accepted, nothing ever answered",
        Reason.TLS_HANDSHAKE,
    ),
    FaultMode("5xx", FaultLayer.WEB, "answers 503 Service Unavailable", Reason.HTTP_STATUS),
    FaultMode("slow", FaultLayer.WEB, "answers only after the probe gave up", Reason.HTTP_TIMEOUT),
    FaultMode(
        "defaced",
        FaultLayer.WEB,
        "200 OK with an attacker's page ('Hacked by ...', a script from cdn.defacer.test): "
        "the portal's text, and the expected text, are gone",
        Reason.HTTP_CONTENT,
    ),
    FaultMode(
        "rotating",
        FaultLayer.WEB,
        "the portal as a news front page: headlines, date and time, a CSRF token and a "
        "banner change on every request (benign: the expected text stays)",
        None,
    ),
    FaultMode("drip", FaultLayer.WEB, "body dripped a byte at a time", Reason.HTTP_TIMEOUT),
    FaultMode(
        "huge_body", FaultLayer.WEB, "a body far over the probe's cap", Reason.HTTP_TOO_LARGE
    ),
    FaultMode("gzip_bomb", FaultLayer.WEB, "a small gzip that inflates", Reason.HTTP_TOO_LARGE),
    FaultMode(
        "redirect_loop", FaultLayer.WEB, "redirects to itself forever", Reason.HTTP_REDIRECT_LOOP
    ),
    FaultMode("huge_header", FaultLayer.WEB, "a 1 MB header line", Reason.PROTOCOL_ERROR),
    FaultMode("garbage", FaultLayer.WEB, "bytes that are not HTTP", Reason.PROTOCOL_ERROR),
    FaultMode(
        "expired_cert", FaultLayer.TLS, "presents an expired certificate", Reason.TLS_CERT_EXPIRED
    ),
    FaultMode(
        "expiring_cert",
        FaultLayer.TLS,
        "presents a valid certificate that expires in 5 days (not a failure: a warning)",
        None,
    ),
    FaultMode(
        "wrong_name_cert",
        FaultLayer.TLS,
        "presents a certificate for another name",
        Reason.TLS_HOSTNAME_MISMATCH,
    ),
    FaultMode(
        "other_ca_cert",
        FaultLayer.TLS,
        f"presents a valid certificate with a new key from a second trusted CA "
        f"(O={OTHER_CA_ORGANIZATION!r}): a certificate change",
        None,
    ),
    FaultMode(
        "renewed_cert",
        FaultLayer.TLS,
        "presents a fresh 90-day certificate with a new key from the same issuer "
        "(benign: a renewal)",
        None,
    ),
    FaultMode("nxdomain", FaultLayer.DNS, "the name does not exist", Reason.DNS_NXDOMAIN),
    FaultMode("servfail", FaultLayer.DNS, "the resolver answers SERVFAIL", Reason.DNS_SERVFAIL),
    FaultMode("dns_drop", FaultLayer.DNS, "DNS never answers", Reason.DNS_TIMEOUT),
    FaultMode(
        "truncate", FaultLayer.DNS, "UDP answers truncated (TCP still works)", None
    ),  # a resolver falls back to TCP: not a failure, a detail
    FaultMode(
        "ns_change",
        FaultLayer.DNS,
        "the zone's NS set becomes ns1/ns2.hijack.test (in the parent's delegation and the "
        "zone), which answer for it: the name still resolves and validates",
        None,
    ),
    FaultMode(
        "dnssec_strip",
        FaultLayer.DNS,
        "the zone is served unsigned and its DS leaves the parent: validation says insecure",
        None,
    ),
    FaultMode(
        "cdn_rotate",
        FaultLayer.DNS,
        "A answers rotate among addresses in the site's own /24 (TTL 20 s), each serving "
        "the site normally (benign: a CDN)",
        None,
    ),
    FaultMode(
        "dns_hijack",
        FaultLayer.DNS,
        f"the A record moves to the attacker network {ATTACKER_PREFIX} (another /16), where "
        "a proxy serves the site's normal page with a certificate from the second CA",
        None,
    ),
    FaultMode(
        "serial_split",
        FaultLayer.DNS,
        "the zone's second name server serves an older SOA serial (a lagging secondary)",
        None,
    ),
)
FAULT_MODES: Mapping[str, FaultMode] = MappingProxyType({m.name: m for m in _MODES})
RECOVER = "recover"  # not a mode: clears every layer
_MODE_ALIASES = {"dns_timeout": "dns_drop", "503": "5xx", "expired": "expired_cert"}
_CERT_BY_MODE = {
    "expired_cert": CertVariant.EXPIRED,
    "expiring_cert": CertVariant.EXPIRING,
    "wrong_name_cert": CertVariant.WRONG_NAME,
    "other_ca_cert": CertVariant.OTHER_CA,
    "renewed_cert": CertVariant.RENEWED,
}
# DNS modes that rewrite the site's zone (and its parent's delegation) rather than
# make the server misbehave: the name keeps resolving.
ZONE_MODES = frozenset({"ns_change", "dnssec_strip", "cdn_rotate", "dns_hijack", "serial_split"})


def parse_mode(text: str) -> str:
    """A mode name as users type it ("wrong-name-cert") -> its canonical name."""
    name = text.strip().lower().replace("-", "_")
    name = _MODE_ALIASES.get(name, name)
    if name != RECOVER and name not in FAULT_MODES:
        raise ValueError(
            f"unknown fault mode {text!r} (modes: {', '.join(FAULT_MODES)}, or {RECOVER})"
        )
    return name


@dataclass(frozen=True, slots=True)
class SiteFaults:
    """One site's faults in one vantage: one setting per layer."""

    web: str | None = None  # a WEB mode name
    cert: CertVariant = CertVariant.VALID
    dns: str | None = None  # a DNS mode name

    @property
    def healthy(self) -> bool:
        return self.web is None and self.cert is CertVariant.VALID and self.dns is None

    def with_mode(self, mode: str) -> SiteFaults:
        if mode == RECOVER:
            return SiteFaults()
        layer = FAULT_MODES[mode].layer
        if layer is FaultLayer.WEB:
            return replace(self, web=mode)
        if layer is FaultLayer.TLS:
            return replace(self, cert=_CERT_BY_MODE[mode])
        return replace(self, dns=mode)

    def modes(self) -> list[str]:
        cert_mode = {v: k for k, v in _CERT_BY_MODE.items()}.get(self.cert)
        return [m for m in (self.dns, cert_mode, self.web) if m is not None]


HEALTHY = SiteFaults()


@dataclass(frozen=True, slots=True)
class Effective:
    """What a site actually does in one vantage once its login dependency is counted."""

    faults: SiteFaults
    login_failing: bool = False  # answers LOGIN_FAILURE_STATUS because its login fails

    @property
    def healthy(self) -> bool:
        return self.faults.healthy and not self.login_failing


def effective_faults(
    region: Region, faults: Mapping[tuple[str, str], SiteFaults], host: str, vantage: str
) -> Effective:
    """A site's own faults, plus a 502 while the login it depends on fails.

    The login fails when its own probe would: a login that is merely tampered with
    in a way that keeps it working (a renewed certificate, a rotating page, a
    changed NS set) or only warns (an expiring certificate) still lets users in.
    A site's own failing web fault wins over the 502; its benign one does not.
    """
    site = region.site(host)
    own = faults.get((host, vantage), HEALTHY)
    own_web_fails = own.web is not None and FAULT_MODES[own.web].http_reason is not None
    login_failing = (
        site.depends_on is not None
        and not own_web_fails
        and expected_http_reason(Effective(faults.get((site.depends_on, vantage), HEALTHY)))
        is not None
    )
    return Effective(own, login_failing)


def expected_http_reason(effective: Effective) -> Reason | None:
    """What the HTTP probe of an https:// site should report (None: success).

    Earlier phases win: DNS before TLS before HTTP, as a real request meets them.
    """
    f = effective.faults
    if f.dns is not None and FAULT_MODES[f.dns].http_reason is not None:
        return FAULT_MODES[f.dns].http_reason
    if f.web in ("refuse", "drop", "blackhole"):
        return FAULT_MODES[f.web].http_reason
    if f.cert is CertVariant.EXPIRED:
        return Reason.TLS_CERT_EXPIRED
    if f.cert is CertVariant.WRONG_NAME:
        return Reason.TLS_HOSTNAME_MISMATCH
    if f.web is not None and FAULT_MODES[f.web].http_reason is not None:
        return FAULT_MODES[f.web].http_reason
    if effective.login_failing:
        return Reason.HTTP_STATUS
    return None


@dataclass(frozen=True, slots=True)
class FaultChange:
    """One site in one vantage whose effective behaviour changed."""

    host: str
    vantage: str
    effective: Effective


class FaultBook:
    """The faults set on a region, per (site, vantage). Owned by one running region.

    `apply` returns what changed in effect (a login failing changes the sites
    behind it too), so the servers are told only about those.
    """

    def __init__(self, region: Region) -> None:
        self.region = region
        self._faults: dict[tuple[str, str], SiteFaults] = {}

    def faults(self, host: str, vantage: str) -> SiteFaults:
        return self._faults.get((host, vantage), HEALTHY)

    def effective(self, host: str, vantage: str) -> Effective:
        return effective_faults(self.region, self._faults, host, vantage)

    def snapshot(self) -> dict[tuple[str, str], Effective]:
        return {
            (site.host, vantage): self.effective(site.host, vantage)
            for site in self.region.sites
            for vantage in self.region.vantages
        }

    def apply(
        self, scope: Scope, selector: str, mode: str, vantage: str | None = None
    ) -> tuple[tuple[Site, ...], list[FaultChange]]:
        """Set `mode` (or recover) on every selected site; raises LookupError/ValueError."""
        mode = parse_mode(mode)
        vantages = self.region.vantages if vantage is None else (vantage,)
        for name in vantages:
            self.region.vantage_index(name)  # raises for an unknown vantage
        sites = self.region.select(scope, selector)
        # Only these sites and those behind them can change: a flapping site among
        # thousands costs as little as in a small region.
        touched = {s.host for site in sites for s in (site, *self.region.dependants(site.host))}
        keys = [(s.host, v) for s in self.region.sites if s.host in touched for v in vantages]
        before = {key: self.effective(*key) for key in keys}
        for site in sites:
            for name in vantages:
                updated = self.faults(site.host, name).with_mode(mode)
                if updated.healthy:
                    self._faults.pop((site.host, name), None)
                else:
                    self._faults[(site.host, name)] = updated
        return sites, self._changes(before)

    def recover_all(self) -> list[FaultChange]:
        before = self.snapshot()
        self._faults.clear()
        return self._changes(before)

    def _changes(self, before: Mapping[tuple[str, str], Effective]) -> list[FaultChange]:
        """What differs now from `before`, in `before`'s order."""
        changes = []
        for (host, vantage), then in before.items():
            now = self.effective(host, vantage)
            if now != then:
                changes.append(FaultChange(host, vantage, now))
        return changes
