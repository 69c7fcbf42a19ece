"""Shared fixtures for probe tests: trustme certificates and ProbeContexts.

Real parts only: certificates from a throwaway trustme CA that the probes
trust through `ca_file`, exactly as an operator's extra CA would be trusted.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from probes.context import ProbeContext, open_probe_context
from probes.settings import Nameserver, ProbeSettings

LOOPBACK = "127.0.0.1"
# A name under .test for the server certificates, so IP and name identities differ.
PORTAL_NAME = "portal.test"
# Never queried by IP-literal targets; a closed port, so a stray query fails fast.
UNUSED_RESOLVER = Nameserver(LOOPBACK, 9)


@dataclass(frozen=True)
class ServerCertificates:
    """Server-side contexts for one trusted CA: good, expired and for another name."""

    valid: ssl.SSLContext  # for 127.0.0.1 and portal.test
    expired: ssl.SSLContext  # for 127.0.0.1 and portal.test, expired yesterday
    other_name: ssl.SSLContext  # for other.test only
    untrusted: ssl.SSLContext  # for 127.0.0.1 and portal.test, from a CA nobody trusts


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def trusted_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def trusted_ca_file(trusted_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "ca.pem"
    trusted_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_certs(trusted_ca: trustme.CA) -> ServerCertificates:
    now = datetime.datetime.now(datetime.UTC)
    stranger = trustme.CA()
    return ServerCertificates(
        valid=server_context(trusted_ca.issue_cert(LOOPBACK, PORTAL_NAME)),
        expired=server_context(
            trusted_ca.issue_cert(
                LOOPBACK,
                PORTAL_NAME,
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            )
        ),
        other_name=server_context(trusted_ca.issue_cert("other.test")),
        untrusted=server_context(stranger.issue_cert(LOOPBACK, PORTAL_NAME)),
    )


ContextFactory = Callable[..., contextlib.AbstractAsyncContextManager[ProbeContext]]


@pytest.fixture
def make_probe_context(trusted_ca_file: Path) -> ContextFactory:
    """`async with make_probe_context(timeout_s=0.5, ...) as ctx`: a real ProbeContext.

    Keyword arguments are ProbeSettings fields; by default the trusted CA is the
    extra trust anchor and the resolver is a closed loopback port.
    """

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[ProbeContext]:
        fields: dict[str, Any] = {
            "timeout_s": 1.0,
            "resolvers": (UNUSED_RESOLVER,),
            "ca_file": trusted_ca_file,
        }
        fields.update(overrides)
        async with open_probe_context(ProbeSettings(**fields)) as ctx:
            yield ctx

    return factory
