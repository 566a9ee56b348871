"""API keys: generated, hashed at rest, checked in constant time, revocable, persistent, seeded; the admin API."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import io
import json
import os
import re
import stat
from pathlib import Path

import pytest
from models_service import keys as keys_module
from models_service.keys import KeyStore, KeyStoreError
from models_testing import ADMIN_KEY, SEEDED_KEY, ModelsServer, run_until_exit

KEY_FORMAT = re.compile(r"^sk-ortserve-[A-Za-z0-9_-]{43}$")


def _auth(server: ModelsServer, key: str | None, method: str = "GET"):
    with server.http(key) as http:
        return http.request(method, "/internal/auth")


def _error(response) -> dict:
    return response.json()["error"]


# --- the store itself ---


def test_generated_keys_are_stored_hashed_in_a_private_file(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "data")
    record, secret = store.create("ci")
    assert KEY_FORMAT.match(secret)
    assert record.prefix == secret[:16] and record.sha256 == hashlib.sha256(secret.encode()).hexdigest()
    text = store.path.read_text()
    assert secret not in text and record.sha256 in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in store.path.parent.iterdir()] == ["api_keys.json"]  # no temp file left behind
    assert store.verify(secret) is not None
    assert KeyStore(tmp_path / "data").verify(secret).id == record.id


def test_verify_compares_every_key_in_constant_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path)
    secrets = [store.create(f"k{i}")[1] for i in range(3)]
    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    assert store.verify(secrets[0]) is not None
    assert len(compared) == 3  # no early exit on the match
    assert store.verify(secrets[0].swapcase()) is None
    assert store.verify(secrets[0][:-1]) is None


class _HashlibSpy:
    """hashlib as keys.py sees it, recording which hash functions a check calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        real = getattr(hashlib, name)

        def record(*args, **kwargs):
            self.calls.append(name)
            return real(*args, **kwargs)

        return record


def test_verify_hashes_once_and_reads_nothing_however_many_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps a check cheap with many keys: the candidate gets one plain sha256 (no key-stretching, no re-hashing
    of the stored keys) and the keys file is not read again. How fast that is: `python -m bench.key_check`."""
    store = KeyStore(tmp_path)
    store._records = [store._new_record(f"k{i}", keys_module.new_secret()) for i in range(200)]
    last = keys_module.new_secret()
    store._records.append(store._new_record("last", last))
    store._write()  # so that reading the file again would still find the key: only the disk guard tells
    spy = _HashlibSpy()

    def no_disk(*args, **kwargs):
        raise AssertionError(f"a key check touched the disk: open{args!r}")

    with monkeypatch.context() as patched:
        patched.setattr(keys_module, "hashlib", spy)
        for module, name in ((builtins, "open"), (io, "open"), (os, "open")):
            patched.setattr(module, name, no_disk)
        for _ in range(3):
            assert store.verify(last) is not None
        assert store.verify("sk-ortserve-not-a-key") is None
    assert spy.calls == ["sha256"] * 4


def test_seeding_is_idempotent_and_does_not_revive_revoked_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    assert store.seed([SEEDED_KEY, "short-key"]) == 2
    assert KeyStore(tmp_path).seed([SEEDED_KEY, "short-key"]) == 0
    store = KeyStore(tmp_path)
    assert len(store.records()) == 2
    short = next(r for r in store.records() if r.sha256 == hashlib.sha256(b"short-key").hexdigest())
    assert short.prefix == "sho"  # a third at most: a listing never gives a short key away
    store.revoke(short.id)
    KeyStore(tmp_path).seed(["short-key"])
    assert KeyStore(tmp_path).verify("short-key") is None


@pytest.mark.model  # starts a service process of its own
def test_a_corrupt_keys_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "models-data").mkdir()
    (tmp_path / "models-data" / "api_keys.json").write_text("{not json")
    with pytest.raises(KeyStoreError, match="cannot read API keys"):
        KeyStore(tmp_path / "models-data")
    result = run_until_exit(tmp_path)
    assert result.returncode == 2 and "cannot read API keys" in result.stderr


# --- over HTTP ---


def test_key_lifecycle(shared_registry: ModelsServer) -> None:
    with shared_registry.http(ADMIN_KEY) as admin:
        created = admin.post("/admin/keys", json={"name": "lifecycle"})
        assert created.status_code == 201
        body = created.json()
        assert set(body) == {"id", "name", "key", "created", "limits"} and body["name"] == "lifecycle"
        assert body["limits"] is None  # keys without limits behave as before
        secret = body["key"]
        assert KEY_FORMAT.match(secret)

        listing = admin.get("/admin/keys").json()
        assert listing["object"] == "list"
        entry = next(item for item in listing["data"] if item["id"] == body["id"])
        assert entry == {
            "id": body["id"],
            "name": "lifecycle",
            "created": body["created"],
            "revoked": False,
            "prefix": secret[:16],
            "limits": None,
        }
        assert secret not in json.dumps(listing) and "sha256" not in json.dumps(listing)

        assert _auth(shared_registry, secret).status_code == 204
        assert _auth(shared_registry, secret).content == b""
        wrong_case = _auth(shared_registry, secret[:12] + secret[12:].swapcase())
        assert wrong_case.status_code == 401 and _error(wrong_case)["code"] == "invalid_api_key"

        revoked = admin.delete(f"/admin/keys/{body['id']}")
        assert (revoked.status_code, revoked.json()) == (200, {"id": body["id"], "revoked": True})
        after = _auth(shared_registry, secret)
        assert after.status_code == 401 and _error(after)["code"] == "invalid_api_key"
        assert next(i for i in admin.get("/admin/keys").json()["data"] if i["id"] == body["id"])["revoked"] is True

        unknown = admin.delete("/admin/keys/key_nope")
        assert unknown.status_code == 404 and _error(unknown)["type"] == "invalid_request_error"


def test_auth_endpoint_errors_and_methods(shared_registry: ModelsServer) -> None:
    missing = _auth(shared_registry, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert _error(missing) == {
        "message": "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
        "type": "authentication_error",
        "param": None,
        "code": "missing_api_key",
    }
    invalid = _auth(shared_registry, "sk-ortserve-nope")
    assert invalid.status_code == 401
    assert _error(invalid)["message"].startswith("Invalid API key")
    assert (_error(invalid)["type"], _error(invalid)["param"]) == ("authentication_error", None)
    # The admin key is not an API key, and the seeded key is one whatever method nginx's subrequest uses.
    assert _auth(shared_registry, ADMIN_KEY).status_code == 401
    for method in ("GET", "HEAD", "POST"):
        assert _auth(shared_registry, SEEDED_KEY, method).status_code == 204
    with shared_registry.http() as http:
        lower_scheme = http.get("/internal/auth", headers={"Authorization": f"bearer {SEEDED_KEY}"})
        basic = http.get("/internal/auth", headers={"Authorization": f"Basic {SEEDED_KEY}"})
    assert lower_scheme.status_code == 204
    assert basic.status_code == 401 and _error(basic)["code"] == "missing_api_key"


@pytest.mark.parametrize(
    ("key", "status", "type_", "code"),
    [
        (None, 401, "authentication_error", "missing_api_key"),
        ("sk-wrong", 401, "authentication_error", "invalid_api_key"),
        (ADMIN_KEY.lower(), 401, "authentication_error", "invalid_api_key"),
        (SEEDED_KEY, 403, "permission_error", "insufficient_permissions"),
    ],
)
def test_admin_api_refuses_all_but_the_admin_key(
    shared_registry: ModelsServer, key: str | None, status: int, type_: str, code: str
) -> None:
    with shared_registry.http(key) as http:
        for method, path, body in [
            ("POST", "/admin/keys", {"name": "x"}),
            ("GET", "/admin/keys", None),
            ("DELETE", "/admin/keys/key_x", None),
            ("POST", "/admin/models/load", {"id": "m", "path": "/m"}),
            ("POST", "/admin/models/unload", {"id": "m"}),
        ]:
            answer = http.request(method, path, json=body)
            assert answer.status_code == status, (method, path)
            assert (_error(answer)["type"], _error(answer)["code"]) == (type_, code)


@pytest.mark.model  # starts a service process of its own
def test_admin_api_is_disabled_without_an_admin_key(tmp_path: Path) -> None:
    server = ModelsServer(tmp_path, MODELS_ADMIN_KEY="").start()
    try:
        with server.http(ADMIN_KEY) as http:
            answer = http.get("/admin/keys")
        assert answer.status_code == 403
        assert (_error(answer)["type"], _error(answer)["code"]) == ("permission_error", "admin_disabled")
        assert "MODELS_ADMIN_KEY" in _error(answer)["message"]
    finally:
        server.stop()


@pytest.mark.model  # starts a service process of its own
def test_keys_survive_a_restart_and_seeding_is_idempotent(tmp_path: Path) -> None:
    server = ModelsServer(tmp_path, MODELS_API_KEYS=f"{SEEDED_KEY}, sk-second-seed-0123456789abcdef0123456789").start()
    try:
        with server.http(ADMIN_KEY) as admin:
            kept = admin.post("/admin/keys", json={"name": "kept"}).json()
            dropped = admin.post("/admin/keys", json={"name": "dropped"}).json()
            admin.delete(f"/admin/keys/{dropped['id']}")
    finally:
        server.stop()
    server.start()
    try:
        assert _auth(server, kept["key"]).status_code == 204
        assert _auth(server, dropped["key"]).status_code == 401
        assert _auth(server, SEEDED_KEY).status_code == 204
        assert _auth(server, "sk-second-seed-0123456789abcdef0123456789").status_code == 204
        with server.http(ADMIN_KEY) as admin:
            names = sorted(item["name"] for item in admin.get("/admin/keys").json()["data"])
        assert names == ["dropped", "kept", "seeded", "seeded"]
    finally:
        server.stop()
