"""--web.config.file: parsing errors, and TLS / basic auth / client certificates with real clients."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scrapejobs_exporter import webconfig
from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.server import ListenAddress, Server
from scrapejobs_exporter.webconfig import BasicAuth, WebConfig, WebConfigError, load_web_config

PASSWORD = "s3cret pass"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


# --- certificates ----------------------------------------------------------------------------


@dataclass
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test-ca", ca_key, None, ca=True)
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("server", "client", "sca", "str")}
    server = _issue("127.0.0.1", keys["server"], (ca.subject, ca_key), server=True)
    client = _issue("alice", keys["client"], (ca.subject, ca_key))
    other_ca = _issue("other-ca", keys["sca"], None, ca=True)
    stranger = _issue("mallory", keys["str"], (other_ca.subject, keys["sca"]))
    _write(d / "ca.crt", ca, ca_key)
    _write(d / "server.crt", server, keys["server"])
    _write(d / "client.crt", client, keys["client"])
    _write(d / "stranger.crt", stranger, keys["str"])
    return Pki(
        d,
        d / "ca.crt",
        d / "server.crt",
        d / "server.key",
        d / "client.crt",
        d / "client.key",
        d / "stranger.crt",
        d / "stranger.key",
    )


def web_config_file(pki: Pki, body: str) -> Path:
    path = pki.dir / "web.yml"
    path.write_text(body)
    return path


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tls_server_config: {cert_file: server.crt}", "tls_server_config.key_file: required"),
        ("tls_server_config: {key_file: server.key}", "tls_server_config.cert_file: required"),
        ("tls_srv_config: {}", "tls_srv_config: unknown key"),
        ("tls_server_config: {cert_file: server.crt, key_file: server.key, ciphers: x}",
         "tls_server_config.ciphers: unknown key"),
        ("tls_server_config: {cert_file: nope.crt, key_file: server.key}",
         "tls_server_config.cert_file: cannot read"),
        ("tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: Maybe}",
         "tls_server_config.client_auth_type: invalid 'Maybe'"),
        ("tls_server_config: {cert_file: server.crt, key_file: server.key, "
         "client_auth_type: RequireAnyClientCert, client_ca_file: ca.crt}",
         "RequireAnyClientCert is not supported"),
        ("tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: ca.crt}",
         "tls_server_config.client_ca_file: set without a client_auth_type"),
        ("tls_server_config: {cert_file: server.crt, key_file: server.key, "
         "client_auth_type: RequireAndVerifyClientCert}",
         "tls_server_config.client_ca_file: required by RequireAndVerifyClientCert"),
        ("tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS14}",
         "tls_server_config.min_version: invalid 'TLS14'"),
        ("basic_auth_users: {alice: plaintext}", "basic_auth_users.alice: expected a bcrypt hash"),
        ("basic_auth_users: [alice]", "basic_auth_users: expected a mapping"),
        ("basic_auth_users: {alice: [", "YAML syntax error"),
    ],
)  # fmt: skip
def test_bad_web_configs_are_one_line_errors(pki: Pki, body: str, message: str) -> None:
    with pytest.raises(WebConfigError) as info:
        load_web_config(web_config_file(pki, body))
    text = str(info.value)
    assert message in text and "\n" not in text
    assert text.startswith(str(pki.dir / "web.yml"))


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read web config"):
        load_web_config(tmp_path / "absent.yml")


def test_cli_rejects_a_bad_web_config_with_exit_2(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scrapejobs_exporter.cli import main

    config = tmp_path / "config.yml"
    config.write_text("poll_interval: 30s\n")
    web = web_config_file(pki, "basic_auth_users: {alice: plaintext}")
    code = main(["run", "--config", str(config), "--web.config.file", str(web)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "basic_auth_users.alice" in err and "Traceback" not in err


# --- basic auth ------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_basic_auth_caches_successful_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real: Callable[[bytes, bytes], bool] = webconfig._bcrypt_check

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(webconfig, "_bcrypt_check", counting)
    auth = BasicAuth({"alice": HASH.encode()})
    assert await auth.check(basic("alice", PASSWORD))
    assert await auth.check(basic("alice", PASSWORD))
    assert len(calls) == 1
    assert not await auth.check(basic("alice", "wrong"))
    assert not await auth.check(basic("alice", "wrong"))
    assert len(calls) == 2  # a repeated wrong password is refused from memory (a flood)
    assert not await auth.check(basic("bob", PASSWORD))  # unknown users still pay for bcrypt
    assert len(calls) == 3
    assert not await auth.check("Bearer x") and not await auth.check("Basic !!!")
    assert all(PASSWORD.encode() not in key for key in auth._answers)


# --- the server over TLS ---------------------------------------------------------------------


@pytest.fixture
async def exporter() -> AsyncIterator[Exporter]:
    exp = Exporter(parse_config(""))
    yield exp
    await exp.stop()


async def serve(exporter: Exporter, web: WebConfig) -> Server:
    server = Server(exporter, ListenAddress("127.0.0.1", 0), "/metrics", web_config=web)
    await server.start()
    return server


def tls_config(pki: Pki, extra: str = "") -> WebConfig:
    return load_web_config(
        web_config_file(
            pki,
            f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"
            f"basic_auth_users:\n  alice: '{HASH}'\n",
        )
    )


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context


async def test_tls_and_basic_auth_protect_everything_but_health(
    pki: Pki, exporter: Exporter
) -> None:
    server = await serve(exporter, tls_config(pki))
    url = f"https://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(verify=client_context(pki), timeout=5) as c:
            assert (await c.get(f"{url}/metrics")).status_code == 401
            assert (await c.get(f"{url}/")).status_code == 401
            wrong = await c.get(f"{url}/metrics", headers={"Authorization": basic("alice", "x")})
            assert wrong.status_code == 401 and "Basic" in wrong.headers["WWW-Authenticate"]
            ok = await c.get(f"{url}/metrics", headers={"Authorization": basic("alice", PASSWORD)})
            assert ok.status_code == 200 and "scrapejobs_exporter_build_info" in ok.text
            for probe in ("/healthz", "/-/healthy"):
                assert (await c.get(f"{url}{probe}")).status_code == 200
            for probe in ("/readyz", "/-/ready"):
                assert (await c.get(f"{url}{probe}")).status_code in (200, 503)
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        await server.stop()


async def test_a_tls_scrape_gets_the_whole_page(pki: Pki, exporter: Exporter) -> None:
    """Over TLS too the page goes out as its parts (several mapped regions here), whole."""
    from prometheus_client import CollectorRegistry

    from scrapejobs_exporter import exposition as module
    from scrapejobs_exporter.exposition import Exposition, Piece

    line = 'brightdata_job_lines{job_id="j_%08x",collector="c_x"} 1\n'
    texts = [
        "".join(line % (n * 2654435761 % 2**32) for n in range(k, k + 600))
        for k in range(0, 9000, 600)
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "REGION_SIZE", 16 * 1024)
        page = Exposition.build(CollectorRegistry(), [Piece.of(text) for text in texts])
    assert len(page.text.segment) >= 3
    exporter.exposition = page
    server = await serve(exporter, tls_config(pki))
    try:
        async with httpx.AsyncClient(verify=client_context(pki), timeout=5) as c:
            ok = await c.get(
                f"https://127.0.0.1:{server.port}/metrics",
                headers={"Authorization": basic("alice", PASSWORD), "Accept-Encoding": "gzip"},
            )
        assert ok.status_code == 200 and ok.headers["Content-Encoding"] == "gzip"
        assert ok.content == page.text.body and ok.text == "".join(texts)
    finally:
        await server.stop()


async def test_required_client_certificate(pki: Pki, exporter: Exporter) -> None:
    extra = "  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
    server = await serve(exporter, tls_config(pki, extra))
    url = f"https://127.0.0.1:{server.port}/metrics"
    auth = {"Authorization": basic("alice", PASSWORD)}
    try:
        good = client_context(pki, pki.client_cert, pki.client_key)
        async with httpx.AsyncClient(verify=good, timeout=5) as c:
            assert (await c.get(url, headers=auth)).status_code == 200
        for context in (
            client_context(pki),
            client_context(pki, pki.stranger_cert, pki.stranger_key),
        ):
            async with httpx.AsyncClient(verify=context, timeout=5) as c:
                with pytest.raises(httpx.HTTPError):
                    await c.get(url, headers=auth)
    finally:
        await server.stop()


async def test_optional_client_certificate_is_verified_when_given(
    pki: Pki, exporter: Exporter
) -> None:
    extra = "  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n"
    server = await serve(exporter, tls_config(pki, extra))
    url = f"https://127.0.0.1:{server.port}/healthz"
    try:
        async with httpx.AsyncClient(verify=client_context(pki), timeout=5) as c:
            assert (await c.get(url)).status_code == 200
        stranger = client_context(pki, pki.stranger_cert, pki.stranger_key)
        async with httpx.AsyncClient(verify=stranger, timeout=5) as c:
            with pytest.raises(httpx.HTTPError):
                await c.get(url)
    finally:
        await server.stop()


async def test_min_version_is_enforced(pki: Pki, exporter: Exporter) -> None:
    server = await serve(exporter, tls_config(pki, "  min_version: TLS13\n"))
    url = f"https://127.0.0.1:{server.port}/healthz"
    try:
        old = client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        async with httpx.AsyncClient(verify=old, timeout=5) as c:
            with pytest.raises(httpx.HTTPError):
                await c.get(url)
        async with httpx.AsyncClient(verify=client_context(pki), timeout=5) as c:
            assert (await c.get(url)).status_code == 200
    finally:
        await server.stop()
