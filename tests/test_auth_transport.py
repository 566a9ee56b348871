"""Keys and transport through the proxy: every refusal is OpenAI JSON, keys travel only in the Authorization header,
TLS 1.2 is the floor, plain HTTP is refused, and slow clients are cut off by nginx's header and body timeouts."""

from __future__ import annotations

import importlib.util
import re
import socket
import ssl
import time
import warnings

import httpx
import pytest
from reliability_testing import Figures, assert_openai_error
from stack_testing import ROOT, Stack


def models(http: httpx.Client, authorization: str | None = None, query: str = "") -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return http.get("/v1/models" + query, headers=headers)


def test_missing_wrong_malformed_and_wrong_case_keys(stack: Stack) -> None:
    with stack.http() as http:
        for authorization in (
            None,
            "",
            "Bearer",
            "Bearer sk-nope",
            f"Bearer {stack.api_key.swapcase()}",
            f"bearer{stack.api_key}",
            f"Basic {stack.api_key}",
            f"Bearer {stack.api_key} extra",
            f"Bearer {stack.admin_key}x",
        ):
            error = assert_openai_error(models(http, authorization), 401)
            assert error["type"] == "authentication_error", (authorization, error)


@pytest.mark.parametrize("name", ["api_key", "api-key", "key", "access_token", "token"])
def test_a_key_in_the_query_string_is_refused_even_with_a_valid_header(stack: Stack, name: str) -> None:
    with stack.http() as http:
        alone = models(http, query=f"?{name}={stack.api_key}")
        with_header = models(http, f"Bearer {stack.api_key}", query=f"?x=1&{name}={stack.api_key}")
        admin = http.get(
            f"/admin/keys?{name}={stack.admin_key}", headers={"Authorization": f"Bearer {stack.admin_key}"}
        )
    for response in (alone, with_header, admin):
        assert assert_openai_error(response, 400)["code"] == "api_key_in_query"
        assert stack.api_key not in response.text and stack.admin_key not in response.text
    access_log = (stack.run_dir / "logs/proxy-access.log").read_text()
    assert stack.api_key not in access_log, "the proxy's access log must not record the query string"


def test_a_revoked_key_is_refused(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    with stack.http() as http:
        created = http.post("/admin/keys", json={"name": "reliability"}, headers=admin).json()
        assert models(http, f"Bearer {created['key']}").status_code == 200
        assert http.delete(f"/admin/keys/{created['id']}", headers=admin).status_code == 200
        # The proxy caches a key check for PROXY_AUTH_CACHE_TTL (5 s); after that the revoked key is refused.
        stack.wait_for(lambda: models(http, f"Bearer {created['key']}").status_code == 401, 8, "revocation")
        assert_openai_error(models(http, f"Bearer {created['key']}"), 401)


def test_a_very_long_authorization_header_is_a_json_400(stack: Stack) -> None:
    with stack.http() as http:  # HTTP/1.1, as the OpenAI SDK speaks it
        assert assert_openai_error(models(http, "Bearer " + "a" * 20_000), 400)["code"] == "bad_request"
        # Under nginx's 8 KB line limit the header reaches the key check, which refuses it.
        assert_openai_error(models(http, "Bearer " + "a" * 6_000), 401)
        assert assert_openai_error(models(http, None, query="?q=" + "a" * 9_000), 414)["code"] == "uri_too_long"


def test_the_admin_api_refuses_normal_keys(stack: Stack) -> None:
    with stack.http() as http:
        for method, path, body in (("GET", "/admin/keys", None), ("POST", "/admin/keys", {"name": "x"})):
            for headers in ({}, {"Authorization": f"Bearer {stack.api_key}"}):
                response = http.request(method, path, json=body, headers=headers)
                assert assert_openai_error(response, (401, 403))["type"] in ("authentication_error", "permission_error")
        load = {"id": "x", "path": "/etc", "service": "chat"}
        response = http.post("/admin/models/load", json=load, headers={"Authorization": f"Bearer {stack.api_key}"})
        assert_openai_error(response, (401, 403))


def test_methods_nginx_refuses_itself_are_json(stack: Stack) -> None:
    with stack.http() as http:
        trace = http.request("TRACE", "/v1/chat/completions")
        post_health = http.post("/health")
    assert assert_openai_error(trace, 405)["code"] == "method_not_allowed" and trace.headers["allow"] == "POST"
    assert assert_openai_error(post_health, 405)["code"] == "method_not_allowed"
    assert post_health.headers["allow"] == "GET, HEAD"


def test_plain_http_is_refused_and_there_is_no_plain_port(stack: Stack) -> None:
    port = stack.ports["PROXY_HTTPS_PORT"]
    response = httpx.get(f"http://localhost:{port}/v1/models", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert assert_openai_error(response, 400)["code"] == "https_required"
    # The one listener is TLS: no port answers plain HTTP with a redirect (the key would already have been sent).
    config = (stack.run_dir / "proxy/conf/conf.d/ortserve.conf").read_text()
    assert re.findall(r"^\s*listen\s+([^;]+);", config, re.M) == [f"{port} ssl http2"]


def _handshake(port: str, ca: str, version: ssl.TLSVersion) -> str:
    context = ssl.create_default_context(cafile=ca)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions; the server must say no
    with warnings.catch_warnings():  # Python deprecates TLS 1.0 and 1.1, which is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    with socket.create_connection(("localhost", int(port)), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.version() or ""


def test_tls_1_2_is_the_minimum(stack: Stack) -> None:
    port = stack.ports["PROXY_HTTPS_PORT"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]
    for version in old:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|protocol version"):
            _handshake(port, stack.ca, version)
    assert _handshake(port, stack.ca, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(port, stack.ca, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_the_default_client_timeouts(stack: Stack) -> None:
    spec = importlib.util.spec_from_file_location("proxy_render", ROOT / "proxy/render.py")  # proxy/ is no package
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    DEFAULTS = render.DEFAULTS

    config = (stack.run_dir / "proxy/conf/conf.d/ortserve.conf").read_text()
    assert DEFAULTS["PROXY_CLIENT_HEADER_TIMEOUT"] == "15s" and DEFAULTS["PROXY_CLIENT_BODY_TIMEOUT"] == "30s"
    assert "client_header_timeout 15s;" in config and "client_body_timeout 30s;" in config


def _tls_socket(stack: Stack) -> ssl.SSLSocket:
    sock = socket.create_connection(("localhost", int(stack.ports["PROXY_HTTPS_PORT"])), timeout=15)
    return stack.ssl_context().wrap_socket(sock, server_hostname="localhost")


def _read_until_closed(tls: ssl.SSLSocket) -> bytes:
    received = b""
    while chunk := tls.recv(65536):
        received += chunk
    return received


def test_slow_clients_are_cut_off(reliability_stack: Stack) -> None:
    """The reliability stack runs with 2 s header and body timeouts (RELIABILITY_ENV)."""
    stack = reliability_stack
    with _tls_socket(stack) as tls:  # a header that never ends
        tls.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        start = time.monotonic()
        _read_until_closed(tls)
        header_cut = time.monotonic() - start
    with _tls_socket(stack) as tls:  # a body that stops after 10 of its 1000 bytes (the key check passes first)
        tls.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {stack.api_key}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"input": '
        )
        start = time.monotonic()
        answer = _read_until_closed(tls)
        body_cut = time.monotonic() - start
    cuts = {"header_cut_after_s": round(header_cut, 2), "body_cut_after_s": round(body_cut, 2)}
    Figures("slow-clients", cuts).write()
    assert 1.5 <= header_cut <= 6, header_cut
    assert 1.5 <= body_cut <= 6, body_cut
    assert answer == b"", answer[:300]  # nginx closes a timed-out connection without an answer
