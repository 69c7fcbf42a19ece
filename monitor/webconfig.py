"""`govwatch run --web-config FILE`: TLS, basic authentication and response headers for every
endpoint of the daemon, in the format of Prometheus's exporter-toolkit
(docs/web-configuration.md there), so a file written for node_exporter works here unchanged:

    tls_server_config:
      cert_file: server.crt          # relative paths: from this file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients-ca.pem
      min_version: TLS12             # TLS12 (default) or TLS13; max_version likewise
    http_server_config:
      headers:
        X-Content-Type-Options: nosniff
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt: htpasswd -nBC 10 "" | tr -d ':\\n'

Keys of that format govwatch does not implement are refused by name, never ignored; unknown
keys are errors too. Every error is `FILE:LINE: message` (`ConfigError`, as for targets.toml).
The file is read once, at the start; the certificate, key and client CA files it names are
read again at each TLS handshake and, when they changed, loaded for it (as exporter-toolkit
does): a renewed certificate is served without a restart, and a renewal caught half
written (a certificate without its key) keeps the previous one served.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import enum
import hashlib
import hmac
import logging
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from monitor.config import Checker, ConfigError, ConfigIssue, KeyPath

TLS_VERSIONS: Final = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# exporter-toolkit's client_auth_type values Python's ssl module can enforce. Go's
# RequestClientCert and RequireAnyClientCert accept a certificate without verifying it.
CLIENT_AUTH_TYPES: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# exporter-toolkit's settable headers, and the values it allows where it restricts them.
HEADERS: Final[Mapping[str, tuple[str, ...]]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
SUPPORTED: Final[Mapping[KeyPath, frozenset[str]]] = {
    (): frozenset({"tls_server_config", "http_server_config", "basic_auth_users"}),
    ("tls_server_config",): frozenset(
        {
            "cert_file",
            "key_file",
            "client_auth_type",
            "client_ca_file",
            "min_version",
            "max_version",
        }
    ),
    ("http_server_config",): frozenset({"headers", "http2"}),
}
# Keys of exporter-toolkit's format that govwatch knows but does not implement.
UNSUPPORTED: Final[Mapping[KeyPath, Mapping[str, str]]] = {
    (): {"rate_limit": "cap clients with a reverse proxy"},
    ("tls_server_config",): {
        "cert": "use cert_file",
        "key": "use key_file",
        "client_ca": "use client_ca_file",
        "client_allowed_sans": "verify clients with client_ca_file",
        "cipher_suites": "Python's defaults apply",
        "prefer_server_cipher_suites": "Python's defaults apply",
        "curve_preferences": "Python's defaults apply",
    },
}
# A bcrypt hash as htpasswd and Go's bcrypt write it: $2a$, $2b$ or $2y$, a cost, 53 characters.
BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
MAX_CACHED_LOGINS: Final = 100
# bcrypt checks waiting at once; beyond, a request is told to retry instead of queueing.
MAX_PENDING_CHECKS: Final = 8
AUTH_REALM: Final = "govwatch"

log = logging.getLogger("govwatch.webconfig")


@dataclass(frozen=True, slots=True)
class ServerTls:
    """`tls_server_config`: the files are absolute paths here."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3

    def ssl_context(self) -> ssl.SSLContext:
        """The server context; OSError, ssl.SSLError or ValueError when the files do not load.
        Each handshake takes the files as they are then (`_Renewals`)."""
        context = self.load()
        context.sni_callback = _Renewals(self, context).on_handshake
        return context

    @property
    def files(self) -> tuple[Path, ...]:
        ca = () if self.client_ca_file is None else (self.client_ca_file,)
        return (self.cert_file, self.key_file, *ca)

    def load(self) -> ssl.SSLContext:
        """A context from the files as they are now (the errors of `ssl_context`)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.min_version
        context.maximum_version = self.max_version
        context.load_cert_chain(self.cert_file, self.key_file, password=_no_passphrase)
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=self.client_ca_file)
        context.verify_mode = self.client_auth
        return context


class _Renewals:
    """At each handshake (an SNI callback, before the certificate is chosen), reads the
    files; when their contents changed since the context in use was loaded, loads them and
    hands the connection the new context. Reading a few KiB costs microseconds, and a
    content digest, unlike a modification time, cannot miss a rewrite in the same tick."""

    def __init__(self, tls: ServerTls, context: ssl.SSLContext) -> None:
        self._tls = tls
        self._current = context
        self._loaded = self._digest()
        self._refused: bytes | None = None  # files that failed to load: said once

    def _digest(self) -> bytes:
        digest = hashlib.sha256()
        for path in self._tls.files:
            try:
                digest.update(path.read_bytes())
            except OSError as exc:  # being replaced: this state fails to load, said once
                digest.update(f"{path}: {exc.errno}".encode())
            digest.update(b"\0")
        return digest.digest()

    def on_handshake(
        self,
        connection: ssl.SSLObject | ssl.SSLSocket,
        _server_name: str | None,
        base: ssl.SSLContext,
    ) -> None:
        try:
            files = self._digest()
            if files not in (self._loaded, self._refused):
                try:
                    self._current, self._loaded = self._tls.load(), files
                    log.info(
                        "web config: the renewed certificate %s is served", self._tls.cert_file
                    )
                except (OSError, ssl.SSLError, ValueError) as exc:
                    self._refused = files
                    log.warning(
                        "web config: cannot load %s and %s as they are now (%s); still serving "
                        "the certificate loaded before",
                        self._tls.cert_file,
                        self._tls.key_file,
                        exc,
                    )
            if self._current is not base:
                connection.context = self._current
        except Exception:  # an exception here fails the handshake: serve what we have
            log.exception("web config: checking for a renewed certificate failed")


def _no_passphrase() -> bytes:
    # Without a callback, OpenSSL would prompt on the terminal and block the start.
    raise ValueError("key_file is encrypted; govwatch needs it unencrypted (readable by it only)")


@dataclass(frozen=True, slots=True)
class WebConfig:
    path: Path
    tls: ServerTls | None = None
    headers: tuple[tuple[str, str], ...] = ()
    users: Mapping[str, bytes] = field(default_factory=dict)  # user name -> bcrypt hash

    def middleware(self) -> Middleware:
        """A new aiohttp middleware enforcing this config (with its own login cache)."""
        return _Guard(self.users, self.headers).__call__


# --- loading -----------------------------------------------------------------------------


class _YamlChecker(Checker):
    """The targets file's Checker over a YAML document whose key lines are given."""

    def __init__(self, path: Path, lines: dict[KeyPath, int]) -> None:
        super().__init__(path, "")
        self.lines = lines

    def known_keys(self, table: Mapping[str, Any], key: KeyPath, label: str, allowed: Any) -> None:
        refused = UNSUPPORTED.get(key, {})
        for name, why in refused.items():
            if name in table:
                self.error((*key, name), f"{_dotted(key, name)}: not supported by govwatch ({why})")
        known = {name: value for name, value in table.items() if name not in refused}
        if key:
            super().known_keys(known, key, label, allowed)
            return
        for name in known:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.6)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                self.error((name,), f"{name}: unknown key{hint}")


def _dotted(key: KeyPath, name: str) -> str:
    return ".".join([*map(str, key), name])


def _key_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], c: Checker) -> None:
    """Record the line of every mapping key under `node`; a repeated key is an error (YAML
    loaders keep the last one silently; exporter-toolkit refuses it)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = str(key_node.value)
            if (*path, name) in lines:
                c.issues.append(
                    ConfigIssue(
                        str(c.path),
                        key_node.start_mark.line + 1,
                        f"{_dotted(path, name)}: repeated",
                    )
                )
            lines.setdefault((*path, name), key_node.start_mark.line + 1)
            _key_lines(value_node, (*path, name), lines, c)


def _parse_yaml(path: Path, text: str) -> tuple[Any, _YamlChecker]:
    lines: dict[KeyPath, int] = {}
    checker = _YamlChecker(path, lines)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, checker
        _key_lines(node, (), lines, checker)
        return loader.construct_document(node), checker
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        raise ConfigError([ConfigIssue(str(path), line, f"not valid YAML: {problem}")]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError([ConfigIssue(str(path), 1, f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _table(c: Checker, document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.error((name,), f"{name}: expected a mapping, got {value!r}")
        return {}
    return value


def _tls(c: Checker, table: Mapping[str, Any], base: Path) -> ServerTls | None:
    key: KeyPath = ("tls_server_config",)
    label = "tls_server_config"
    c.known_keys(table, key, label, SUPPORTED[key])
    if not table:
        return None
    issues_before = len(c.issues)
    files: dict[str, Path | None] = {}
    for name in ("cert_file", "key_file", "client_ca_file"):
        text = c.value(table, key, label, name, str, required=name != "client_ca_file")
        files[name] = base / text if text else None
        if text is not None and not text:
            c.error((*key, name), f"{label}.{name}: empty")
    choices: dict[str, Any] = {}
    for name, allowed, default in (
        ("client_auth_type", CLIENT_AUTH_TYPES, "NoClientCert"),
        ("min_version", TLS_VERSIONS, "TLS12"),
        ("max_version", TLS_VERSIONS, "TLS13"),
    ):
        text = c.value(table, key, label, name, str)
        if text is not None and text not in allowed:
            c.error(
                (*key, name), f"{label}.{name}: expected one of {', '.join(allowed)}, got {text!r}"
            )
            text = None
        choices[name] = allowed[text or default]
    if choices["min_version"] > choices["max_version"]:
        c.error((*key, "min_version"), f"{label}.min_version: above max_version")
    client_auth = choices["client_auth_type"]
    if client_auth != ssl.CERT_NONE and files["client_ca_file"] is None:
        c.error((*key, "client_auth_type"), f"{label}.client_auth_type: needs client_ca_file")
    if client_auth == ssl.CERT_NONE and files["client_ca_file"] is not None:
        # As exporter-toolkit: a CA for clients that are never asked for a certificate is a mistake.
        c.error(
            (*key, "client_ca_file"),
            f"{label}.client_ca_file: set, but client_auth_type does not verify clients "
            "(use RequireAndVerifyClientCert)",
        )
    cert, private_key = files["cert_file"], files["key_file"]
    if cert is None or private_key is None or len(c.issues) > issues_before:
        return None
    tls = ServerTls(
        cert_file=cert,
        key_file=private_key,
        client_ca_file=files["client_ca_file"],
        client_auth=client_auth,
        min_version=choices["min_version"],
        max_version=choices["max_version"],
    )
    for name, file in files.items():
        if file is None:
            continue
        try:
            file.read_bytes()
        except OSError as exc:
            c.error((*key, name), f"{label}.{name}: cannot read {file}: {exc.strerror or exc}")
    if len(c.issues) > issues_before:
        return None
    try:
        tls.ssl_context()  # loaded now, so a bad pair is a start-up error, not a failing scrape
    except (ssl.SSLError, ValueError, OSError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        c.error(key, f"{label}: cannot load cert_file {cert} with key_file {private_key}: {reason}")
        return None
    return tls


def _headers(c: Checker, table: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    key: KeyPath = ("http_server_config",)
    label = "http_server_config"
    c.known_keys(table, key, label, SUPPORTED[key])
    c.value(table, key, label, "http2", bool)  # accepted; govwatch speaks HTTP/1.1 only
    headers = table.get("headers")
    if headers is None:
        return ()
    key, label = (*key, "headers"), f"{label}.headers"
    if not isinstance(headers, dict):
        c.error(key, f"{label}: expected a mapping, got {headers!r}")
        return ()
    chosen: list[tuple[str, str]] = []
    for name, value in headers.items():
        if name not in HEADERS:
            close = difflib.get_close_matches(str(name), list(HEADERS), n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            c.error((*key, name), f"{label}.{name}: this header cannot be set{hint}")
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            c.error((*key, name), f"{label}.{name}: expected a string, got {value!r}")
            continue
        text = str(value)
        if "\r" in text or "\n" in text:
            c.error((*key, name), f"{label}.{name}: a line break cannot be in a header")
        elif HEADERS[name] and text not in HEADERS[name]:
            c.error(
                (*key, name), f"{label}.{name}: expected {' or '.join(HEADERS[name])}, got {text!r}"
            )
        elif text:  # blank: unset, as in exporter-toolkit
            chosen.append((name, text))
    return tuple(chosen)


def _users(c: Checker, table: Mapping[str, Any]) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for name, hashed in table.items():
        key: KeyPath = ("basic_auth_users", str(name))
        label = f"basic_auth_users.{name}"
        if not isinstance(name, str | int) or isinstance(name, bool) or not str(name):
            c.error(key, f"basic_auth_users: {name!r} is not a user name")
        elif ":" in str(name):
            c.error(
                key, f"{label}: a user name cannot contain ':' (basic authentication splits there)"
            )
        elif not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            c.error(
                key,
                f"{label}: not a bcrypt hash ($2y$, $2b$ or $2a$, a cost, 53 characters); "
                """make one with: htpasswd -nBC 10 "" | tr -d ':\\n'""",
            )
        elif not 4 <= int(hashed[4:6]) <= 31:
            c.error(key, f"{label}: bcrypt cost {hashed[4:6]} is outside 4-31")
        else:
            users[str(name)] = hashed.encode("ascii")
    return users


def parse_web_config(text: str, path: Path) -> WebConfig:
    """The web config in `text` (read from `path`); ConfigError lists every problem."""
    document, c = _parse_yaml(path, text)
    if document is None:
        document = {}  # an empty file: plain HTTP, no authentication (as exporter-toolkit)
    if not isinstance(document, dict):
        raise ConfigError([ConfigIssue(str(path), 1, "expected a mapping of settings at the top")])
    c.known_keys(document, (), "", SUPPORTED[()])
    users = _users(c, _table(c, document, "basic_auth_users"))
    headers = _headers(c, _table(c, document, "http_server_config"))
    tls = _tls(c, _table(c, document, "tls_server_config"), path.resolve().parent)
    if c.issues:
        raise ConfigError(sorted(c.issues, key=lambda issue: issue.line))
    return WebConfig(path=path, tls=tls, headers=headers, users=users)


def load_web_config(path: Path) -> WebConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigIssue(str(path), 1, f"cannot read the web config: {reason}")]
        ) from None
    return parse_web_config(text, path)


# --- enforcing ---------------------------------------------------------------------------


class _Verdict(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    BUSY = "busy"


def credentials(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # longer than bcrypt's 72 bytes, or a hash it cannot read
        return False


class _Guard:
    """Sets the configured headers on every response and, with users configured, answers
    401 unless the request carries one's password.

    bcrypt is slow on purpose (tens of ms at cost 10), so a verified login is remembered,
    keyed by an HMAC of the presented user and password under a key made here: a scrape
    pays bcrypt once, not every 15 s, and no password is kept. Checks run one at a time in a
    thread (one core at most for a password-guessing client); an unknown user is checked
    against a configured hash anyway, so timing does not tell which users exist.
    """

    def __init__(self, users: Mapping[str, bytes], headers: tuple[tuple[str, str], ...]) -> None:
        self._users = dict(users)
        self._decoy = next(iter(self._users.values()), b"")
        self._headers = headers
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, None] = {}  # insertion order: the oldest goes first
        self._one_at_a_time = asyncio.Lock()
        self._pending = 0

    @web.middleware
    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            verdict = await self._check(request) if self._users else _Verdict.ALLOWED
            if verdict is _Verdict.ALLOWED:
                response = await handler(request)
            elif verdict is _Verdict.BUSY:
                response = web.json_response(
                    {"error": "too many logins being checked; retry"},
                    status=503,
                    headers={"Retry-After": "1"},
                )
            else:
                response = web.json_response(
                    {"error": "unauthorized"},
                    status=401,
                    headers={"WWW-Authenticate": f'Basic realm="{AUTH_REALM}", charset="UTF-8"'},
                )
        except web.HTTPException as exc:  # 404, 405...: the headers go on errors too
            exc.headers.update(self._headers)
            raise
        response.headers.update(self._headers)
        return response

    async def _check(self, request: web.Request) -> _Verdict:
        presented = credentials(request.headers.get("Authorization"))
        if presented is None:
            return _Verdict.DENIED
        user, password = presented
        # Length-prefixed: ("a", "b:c") and ("a:b", "c") must not share a key.
        login = len(user).to_bytes(4, "big") + user + password
        key = hmac.digest(self._cache_key, login, "sha256")
        if key in self._verified:
            return _Verdict.ALLOWED
        if self._pending >= MAX_PENDING_CHECKS:
            return _Verdict.BUSY
        try:
            name: str | None = user.decode("utf-8")
        except UnicodeDecodeError:
            name = None
        hashed = self._users.get(name) if name is not None else None
        self._pending += 1
        try:
            async with self._one_at_a_time:
                matches = await asyncio.to_thread(
                    _bcrypt_matches, password, hashed if hashed is not None else self._decoy
                )
        finally:
            self._pending -= 1
        if hashed is None or not matches:
            return _Verdict.DENIED
        self._verified[key] = None
        while len(self._verified) > MAX_CACHED_LOGINS:
            del self._verified[next(iter(self._verified))]
        return _Verdict.ALLOWED
