"""TLS on the gRPC port, and mutual TLS, with certificates made here (a CA, the
server's certificate for 127.0.0.1 and localhost, and clients')."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from seatwise.v1 import tenancy_pb2, tenancy_pb2_grpc

from server.app import create_server
from server.cli import main
from server.client import channel_credentials
from server.config import Config
from server.context import Stores
from tests.conftest import ADMIN_KEY

METADATA = (("authorization", f"Bearer {ADMIN_KEY}"),)


def _write_pair(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _issue(
    directory: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate named ``name`` (a CA when ``issuer`` is None), written as name.pem/name.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"seatwise test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    _write_pair(directory, name, cert, key)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca, server, client (signed by ca) and stranger (signed by another CA)."""
    directory = tmp_path_factory.mktemp("pki")
    ca = _issue(directory, "ca", None, server=False)
    _issue(directory, "server", ca, server=True)
    _issue(directory, "client", ca, server=False)
    other_ca = _issue(directory, "other-ca", None, server=False)
    _issue(directory, "stranger", other_ca, server=False)
    return directory


async def _serve(stores: Stores, config: Config) -> AsyncIterator[str]:
    await stores.tenants.put_bootstrap_key(ADMIN_KEY)
    server, port, _health = create_server(config, stores)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.fixture
async def tls_server(stores: Stores, pki: Path) -> AsyncIterator[str]:
    config = Config(port=0, tls_cert=pki / "server.pem", tls_key=pki / "server.key")
    async for target in _serve(stores, config):
        yield target


@pytest.fixture
async def mtls_server(stores: Stores, pki: Path) -> AsyncIterator[str]:
    config = Config(
        port=0, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem"
    )
    async for target in _serve(stores, config):
        yield target


async def _who_am_i(target: str, credentials: grpc.ChannelCredentials | None) -> tenancy_pb2.WhoAmIResponse:
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    async with channel:
        stub = tenancy_pb2_grpc.TenantServiceStub(channel)
        return await stub.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=METADATA, timeout=20)


async def _refused(target: str, credentials: grpc.ChannelCredentials | None) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _who_am_i(target, credentials)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value


async def test_tls_client_trusting_the_ca_is_served(tls_server: str, pki: Path) -> None:
    await _who_am_i(tls_server, channel_credentials(pki / "ca.pem"))


async def test_plaintext_client_is_refused_by_a_tls_port(tls_server: str) -> None:
    await _refused(tls_server, None)


async def test_a_client_not_trusting_the_ca_is_refused(tls_server: str, pki: Path) -> None:
    await _refused(tls_server, channel_credentials(pki / "other-ca.pem"))


async def test_mutual_tls_needs_a_client_certificate_from_the_ca(mtls_server: str, pki: Path) -> None:
    await _refused(mtls_server, channel_credentials(pki / "ca.pem"))
    await _refused(
        mtls_server, channel_credentials(pki / "ca.pem", pki / "stranger.pem", pki / "stranger.key")
    )
    await _who_am_i(mtls_server, channel_credentials(pki / "ca.pem", pki / "client.pem", pki / "client.key"))


async def test_cli_client_connects_with_tls(mtls_server: str, pki: Path) -> None:
    args = ["tenant", "create", "Over TLS", "--target", mtls_server, "--api-key", ADMIN_KEY,
            "--tls-ca", str(pki / "ca.pem"), "--tls-client-cert", str(pki / "client.pem"),
            "--tls-client-key", str(pki / "client.key")]  # fmt: skip
    # the CLI's client is synchronous: off the event loop, which serves it
    result = await asyncio.to_thread(CliRunner().invoke, main, args)
    assert result.exit_code == 0, result.output
    refused = await asyncio.to_thread(CliRunner().invoke, main, args[:7])  # no TLS options
    assert refused.exit_code != 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_cert": "server.pem"}, "both a certificate and its key"),
        ({"tls_client_ca": "ca.pem"}, "needs TLS"),
        ({"tls_cert": "missing.pem", "tls_key": "server.key"}, "does not exist"),
    ],
)
def test_tls_settings_are_checked(pki: Path, settings: dict[str, str], message: str) -> None:
    config = replace(Config(), **{k: pki / v for k, v in settings.items()})
    with pytest.raises(ValueError, match=message):
        config.check()


def test_tls_settings_from_the_environment(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATWISE_TLS_CERT", str(pki / "server.pem"))
    monkeypatch.setenv("SEATWISE_TLS_KEY", str(pki / "server.key"))
    monkeypatch.setenv("SEATWISE_TLS_CLIENT_CA", str(pki / "ca.pem"))
    config = Config.from_env()
    config.check()
    assert (config.tls_cert, config.tls_key, config.tls_client_ca) == (
        pki / "server.pem",
        pki / "server.key",
        pki / "ca.pem",
    )
