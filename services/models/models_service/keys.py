"""API keys, stored hashed in one JSON file under the data folder; the secrets themselves are never kept."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ortserve_common.limits.model import KeyLimits

logger = logging.getLogger(__name__)

KEY_PREFIX = "sk-ortserve-"
# "sk-ortserve-" plus 4 random characters: enough to tell keys apart in a listing, 24 of 256 bits shown.
DISPLAY_PREFIX_LEN = len(KEY_PREFIX) + 4
WEAK_SEED_LEN = 32
KEYS_FILE = "api_keys.json"
FILE_VERSION = 1


class KeyStoreError(Exception):
    """The keys file cannot be read or written; starting without it would lock every client out (or worse, in)."""


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 32 random bytes → 43 urlsafe characters


def display_prefix(secret: str) -> str:
    """At most a third of the secret, so that a short seeded key is not given away whole by a listing."""
    return secret[: min(DISPLAY_PREFIX_LEN, len(secret) // 3)]


def hash_secret(secret: str) -> str:
    # A plain digest suffices: generated secrets carry 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass
class ApiKeyRecord:
    id: str
    name: str
    created: int
    revoked: bool
    prefix: str
    sha256: str
    limits: KeyLimits | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiKeyRecord:
        limits = data.get("limits")  # absent in files written before keys had limits
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            created=int(data["created"]),
            revoked=bool(data["revoked"]),
            prefix=str(data["prefix"]),
            sha256=str(data["sha256"]),
            limits=KeyLimits.model_validate(limits) if limits else None,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["limits"] = self.limits.model_dump(exclude_none=True) if self.limits is not None else None
        return data


class KeyStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / KEYS_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"cannot create data folder {data_dir}: {exc.strerror or exc}") from None
        self._records = self._read()

    def create(self, name: str, limits: KeyLimits | None = None) -> tuple[ApiKeyRecord, str]:
        secret = new_secret()
        record = self._new_record(name, secret)
        record.limits = None if limits is None or limits.is_empty() else limits
        self._records.append(record)
        self._write()
        logger.info("created API key %s (%s) named %r", record.id, record.prefix, name)
        return record, secret

    def seed(self, seeded_secrets: list[str]) -> int:
        """Add the keys not stored yet; a stored one keeps its state, so a revoked seed is not revived by a restart."""
        known = {record.sha256: record for record in self._records}
        added = 0
        for secret in seeded_secrets:
            record = known.get(hash_secret(secret))
            if record is not None:
                if record.revoked:
                    logger.warning("seeded API key %s (%s) was revoked; it stays revoked", record.id, record.prefix)
                continue
            if len(secret) < WEAK_SEED_LEN:
                logger.warning("a seeded API key is shorter than %d characters; prefer generated keys", WEAK_SEED_LEN)
            record = self._new_record("seeded", secret)
            self._records.append(record)
            known[record.sha256] = record
            added += 1
        if added:
            self._write()
            logger.info("seeded %d API key(s)", added)
        return added

    def records(self) -> list[ApiKeyRecord]:
        return list(self._records)

    def revoke(self, key_id: str) -> ApiKeyRecord | None:
        for record in self._records:
            if record.id == key_id:
                if not record.revoked:
                    record.revoked = True
                    self._write()
                    logger.info("revoked API key %s (%s)", record.id, record.prefix)
                return record
        return None

    def update(self, key_id: str, changes: dict[str, Any]) -> ApiKeyRecord | None:
        """Apply `name` and/or `limits` (a KeyLimits, or None to remove them) to the key; None if it is unknown."""
        for record in self._records:
            if record.id == key_id:
                if "name" in changes and changes["name"] is not None:
                    record.name = changes["name"]
                if "limits" in changes:
                    limits = changes["limits"]
                    record.limits = None if limits is None or limits.is_empty() else limits
                self._write()
                logger.info("updated API key %s (%s): %s", record.id, record.prefix, ", ".join(sorted(changes)))
                return record
        return None

    def find(self, key_id: str) -> ApiKeyRecord | None:
        return next((record for record in self._records if record.id == key_id), None)

    def verify(self, secret: str) -> ApiKeyRecord | None:
        """The valid, unrevoked key with this secret, or None; exact (case-sensitive) match only."""
        candidate = hash_secret(secret)
        match = None
        # Every record is compared, in constant time, so the timing says nothing about which one matched or how far.
        for record in self._records:
            if hmac.compare_digest(record.sha256, candidate):
                match = record
        return match if match is not None and not match.revoked else None

    def _new_record(self, name: str, secret: str) -> ApiKeyRecord:
        return ApiKeyRecord(
            id="key_" + secrets.token_hex(8),
            name=name,
            created=int(time.time()),
            revoked=False,
            prefix=display_prefix(secret),
            sha256=hash_secret(secret),
        )

    def _read(self) -> list[ApiKeyRecord]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [ApiKeyRecord.from_dict(item) for item in data["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
            raise KeyStoreError(f"cannot read API keys from {self.path}: {exc!r}") from None

    def _write(self) -> None:
        """Write a temp file and rename it over the old one, so a crash leaves either the old or the new file."""
        payload = json.dumps({"version": FILE_VERSION, "keys": [r.to_dict() for r in self._records]}, indent=2)
        fd, temp_path = tempfile.mkstemp(dir=self.path.parent, prefix=f".{KEYS_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_path, self.path)
        except BaseException:
            Path(temp_path).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable; some filesystems refuse to open a folder, which only loses that guarantee."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
