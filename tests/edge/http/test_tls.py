"""https upstreams: the shared SSL context, SNI and certificate checks."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kestrel.common.config import EdgeConfig
from kestrel.common.serving import BackgroundServer, serve_in_thread
from kestrel.edge.http import FastTransport
from kestrel.edge.upstream import ConnectFailed, Upstream

from .servers import SECRET, SSE_EVENTS, app


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost"
    subprocess.run(
        [*command.split(), "-keyout", key, "-out", cert, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.fixture(scope="module")
def tls_server(certificate: tuple[Path, Path]) -> Iterator[BackgroundServer]:
    key, cert = certificate
    with serve_in_thread(app, lifespan="off", ssl_keyfile=str(key), ssl_certfile=str(cert)) as server:
        yield server


async def test_https_with_a_trusted_certificate(tls_server: BackgroundServer, certificate: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(certificate[1]))
    transport = FastTransport(EdgeConfig(), ssl_context=context)
    upstream = Upstream("acct-tls", "anthropic", f"https://127.0.0.1:{tls_server.port}", (b"x-api-key", SECRET))
    try:
        for _ in range(3):
            response = await transport.open(upstream, "GET", "/sse?delay=0.001", [], b"")
            assert response.status_code == 200
            assert b"".join([chunk async for chunk in response.iter_chunks()]) == b"".join(SSE_EVENTS)
        assert len(transport._origins[upstream.base_url].idle) == 1
    finally:
        await transport.aclose()


async def test_https_refuses_an_untrusted_certificate(tls_server: BackgroundServer) -> None:
    transport = FastTransport(EdgeConfig())  # the system's CAs, which never signed the test certificate
    upstream = Upstream("acct-tls", "anthropic", f"https://127.0.0.1:{tls_server.port}", (b"x-api-key", SECRET))
    try:
        with pytest.raises(ConnectFailed, match=r"acct-tls.*SSLCertVerificationError"):
            await transport.open(upstream, "GET", "/", [], b"")
    finally:
        await transport.aclose()
