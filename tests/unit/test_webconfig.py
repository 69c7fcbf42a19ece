"""Loading `--web-config` files (exporter-toolkit's format): what is accepted, and the exact
FILE:LINE message for each mistake."""

from __future__ import annotations

import base64
import dataclasses
import ssl
from pathlib import Path

import bcrypt
import pytest
import trustme

from monitor.config import ConfigError
from monitor.webconfig import (
    ServerTls,
    WebConfig,
    credentials,
    load_web_config,
    parse_web_config,
)

# bcrypt at its lowest cost (4): the format is the same as htpasswd's cost 10, only faster.
PASSWORD = b"scrape-me"
HASH = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=4)).decode()


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of a basic-auth login."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclasses.dataclass(frozen=True)
class LockedDown:
    """A web config that locks a server on 127.0.0.1 down (a trustme certificate, one
    basic-auth user, two headers), and what a client needs to get in. Shared by the API's
    tests, the daemon's and the Prometheus end-to-end test."""

    web_config: Path
    ca_file: Path
    username: str = "prometheus"
    password: str = PASSWORD.decode()
    headers: tuple[tuple[str, str], ...] = (
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "deny"),
    )

    @classmethod
    def create(cls, folder: Path) -> LockedDown:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(folder / "ca.pem")
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(folder / "server.crt")
        cert.private_key_pem.write_to_path(folder / "server.key")
        locked = cls(folder / "web-config.yml", folder / "ca.pem")
        headers = "".join(f"    {name}: {value}\n" for name, value in locked.headers)
        locked.web_config.write_text(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            f"http_server_config:\n  headers:\n{headers}"
            f"basic_auth_users:\n  {locked.username}: {HASH}\n",
            encoding="utf-8",
        )
        return locked

    def client_tls(self) -> ssl.SSLContext:
        """A new client context trusting the server's certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def authorization(self) -> dict[str, str]:
        return basic_auth(self.username, self.password)


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """tmp_path/tls with server.crt, server.key and clients-ca.pem (trustme)."""
    folder = tmp_path / "tls"
    folder.mkdir()
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "govwatch.test")
    server.cert_chain_pems[0].write_to_path(folder / "server.crt")
    server.private_key_pem.write_to_path(folder / "server.key")
    trustme.CA().cert_pem.write_to_path(folder / "clients-ca.pem")
    return folder


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    return path


def issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    return [str(issue) for issue in caught.value.issues]


def test_a_full_config_loads_with_paths_relative_to_its_folder(tmp_path: Path, certs: Path) -> None:
    path = write(
        tmp_path,
        f"""\
tls_server_config:
  cert_file: tls/server.crt
  key_file: {certs / "server.key"}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: tls/clients-ca.pem
  min_version: TLS13
http_server_config:
  http2: true
  headers:
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
    Content-Security-Policy: ""
    X-XSS-Protection: 1
basic_auth_users:
  prometheus: {HASH}
""",
    )
    config = load_web_config(path)
    assert config == WebConfig(
        path=path,
        tls=ServerTls(
            cert_file=certs / "server.crt",
            key_file=certs / "server.key",
            client_ca_file=certs / "clients-ca.pem",
            client_auth=ssl.CERT_REQUIRED,
            min_version=ssl.TLSVersion.TLSv1_3,
            max_version=ssl.TLSVersion.TLSv1_3,
        ),
        # A blank header is unset, as in exporter-toolkit; a YAML number is its text.
        headers=(
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "deny"),
            ("X-XSS-Protection", "1"),
        ),
        users={"prometheus": HASH.encode()},
    )
    assert config.tls is not None
    context = config.tls.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_an_empty_file_is_plain_http_without_authentication(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    assert load_web_config(path) == WebConfig(path=path)


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
tls_server_confg:
  cert_file: server.crt
basic_auth_users:
  prometheus: {HASH}
http_server_config:
  header:
    X-Frame-Options: deny
""",
    )
    assert issues(path) == [
        f'{path}:1: tls_server_confg: unknown key (did you mean "tls_server_config"?)',
        f'{path}:6: http_server_config.header: unknown key (did you mean "headers"?)',
    ]


def test_keys_of_the_format_govwatch_does_not_implement_are_refused_by_name(
    tmp_path: Path, certs: Path
) -> None:
    path = write(
        tmp_path,
        """\
tls_server_config:
  cert_file: tls/server.crt
  key_file: tls/server.key
  cipher_suites: [TLS_AES_128_GCM_SHA256]
rate_limit:
  interval: 1s
""",
    )
    assert issues(path) == [
        f"{path}:4: tls_server_config.cipher_suites: not supported by govwatch "
        "(Python's defaults apply)",
        f"{path}:5: rate_limit: not supported by govwatch (cap clients with a reverse proxy)",
    ]


def test_a_password_that_is_not_a_bcrypt_hash_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
basic_auth_users:
  alice: {HASH}
  bob: plain-text-password
  "carol:x": {HASH}
""",
    )
    assert issues(path) == [
        f"{path}:3: basic_auth_users.bob: not a bcrypt hash ($2y$, $2b$ or $2a$, a cost, 53 "
        """characters); make one with: htpasswd -nBC 10 "" | tr -d ':\\n'""",
        f"{path}:4: basic_auth_users.carol:x: a user name cannot contain ':' "
        "(basic authentication splits there)",
    ]


def test_a_missing_certificate_file_is_named_with_its_resolved_path(
    tmp_path: Path, certs: Path
) -> None:
    path = write(
        tmp_path,
        """\
tls_server_config:
  cert_file: tls/missing.crt
  key_file: tls/server.key
""",
    )
    assert issues(path) == [
        f"{path}:2: tls_server_config.cert_file: cannot read {certs / 'missing.crt'}: "
        "No such file or directory"
    ]


def test_a_certificate_and_key_that_do_not_belong_together_are_an_error(
    tmp_path: Path, certs: Path
) -> None:
    other = trustme.CA().issue_cert("other.test")
    other.private_key_pem.write_to_path(certs / "other.key")
    path = write(
        tmp_path, "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/other.key\n"
    )
    assert issues(path) == [
        f"{path}:1: tls_server_config: cannot load cert_file {certs / 'server.crt'} with "
        f"key_file {certs / 'other.key'}: KEY_VALUES_MISMATCH"
    ]


def test_tls_choices_and_their_combinations_are_checked(tmp_path: Path, certs: Path) -> None:
    path = write(
        tmp_path,
        """\
tls_server_config:
  cert_file: tls/server.crt
  min_version: TLS11
  client_auth_type: RequireAndVerifyClientCert
""",
    )
    assert issues(path) == [
        f"{path}:1: tls_server_config: missing required key 'key_file'",
        f"{path}:3: tls_server_config.min_version: expected one of TLS12, TLS13, got 'TLS11'",
        f"{path}:4: tls_server_config.client_auth_type: needs client_ca_file",
    ]
    path = write(
        tmp_path,
        """\
tls_server_config:
  cert_file: tls/server.crt
  key_file: tls/server.key
  client_ca_file: tls/clients-ca.pem
""",
    )
    assert issues(path) == [
        f"{path}:4: tls_server_config.client_ca_file: set, but client_auth_type does not "
        "verify clients (use RequireAndVerifyClientCert)"
    ]


def test_headers_are_the_ones_exporter_toolkit_allows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
http_server_config:
  headers:
    X-Frame-Options: allow-from-anywhere
    X-Powered-By: govwatch
""",
    )
    assert issues(path) == [
        f"{path}:3: http_server_config.headers.X-Frame-Options: expected deny or sameorigin, "
        "got 'allow-from-anywhere'",
        f"{path}:4: http_server_config.headers.X-Powered-By: this header cannot be set",
    ]


def test_broken_yaml_and_repeated_keys_are_errors_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "basic_auth_users:\n  alice: [unclosed\n")
    (issue,) = issues(path)
    assert issue.startswith(f"{path}:3: not valid YAML: ")
    path = write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n  alice: {HASH}\n")
    assert issues(path) == [f"{path}:3: basic_auth_users.alice: repeated"]


def test_a_missing_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"
    assert issues(path) == [f"{path}:1: cannot read the web config: No such file or directory"]


def test_the_locked_down_config_the_other_tests_use_is_what_it_says(tmp_path: Path) -> None:
    locked = LockedDown.create(tmp_path)
    assert load_web_config(locked.web_config) == WebConfig(
        path=locked.web_config,
        tls=ServerTls(cert_file=tmp_path / "server.crt", key_file=tmp_path / "server.key"),
        headers=locked.headers,
        users={"prometheus": HASH.encode()},
    )


def test_basic_credentials_are_parsed_strictly() -> None:
    def basic(raw: bytes) -> str:
        return "Basic " + base64.b64encode(raw).decode()

    assert credentials(basic(b"prometheus:pa:ss")) == (b"prometheus", b"pa:ss")
    assert credentials(basic(b"prometheus:")) == (b"prometheus", b"")
    assert credentials("basic " + base64.b64encode(b"a:b").decode()) == (b"a", b"b")
    for header in (None, "", basic(b"no-colon"), "Basic !!!", "Bearer abc", "Basic"):
        assert credentials(header) is None, header


def test_the_shipped_example_loads_once_given_a_hash_and_refuses_to_start_without(
    tmp_path: Path, certs: Path
) -> None:
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "web-config.yml"
    # Where systemd puts the credentials, here the test's certificates.
    text = shipped.read_text().replace(
        "/run/credentials/govwatch.service/govwatch.", f"{certs}/server."
    )
    assert f"{certs}/server.key" in text
    unchanged = write(tmp_path, text)
    (issue,) = issues(unchanged)
    assert issue.startswith(f"{unchanged}:21: basic_auth_users.prometheus: not a bcrypt hash")
    config = parse_web_config(text.replace("REPLACE-WITH-A-BCRYPT-HASH", HASH), unchanged)
    assert config.tls is not None and config.tls.key_file == certs / "server.key"
    assert config.users == {"prometheus": HASH.encode()}
    assert dict(config.headers) == {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny"}
