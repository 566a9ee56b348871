"""Bearer-key checks for /internal/auth (nginx's auth_request) and for the admin API."""

from __future__ import annotations

import hmac

from ortserve_common.errors import OpenAIError
from ortserve_common.limits.model import (
    DEFAULT_PRIORITY,
    KEY_ID_HEADER,
    KEY_LIMITS_HEADER,
    KEY_PRIORITY_HEADER,
    KeyLimits,
)
from ortserve_common.model_manifest import Manifest
from pydantic import SecretStr

from models_service.keys import ApiKeyRecord, KeyStore

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def missing_api_key() -> OpenAIError:
    return OpenAIError(
        401,
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
        "authentication_error",
        None,
        "missing_api_key",
        _CHALLENGE,
    )


def invalid_api_key() -> OpenAIError:
    return OpenAIError(
        401,
        "Invalid API key provided: it is unknown or has been revoked.",
        "authentication_error",
        None,
        "invalid_api_key",
        _CHALLENGE,
    )


def authenticate(token: str | None, key_store: KeyStore) -> ApiKeyRecord:
    if token is None:
        raise missing_api_key()
    record = key_store.verify(token)
    if record is None:
        raise invalid_api_key()
    return record


def require_admin_key(token: str | None, admin_key: SecretStr | None, key_store: KeyStore) -> None:
    if admin_key is None:
        raise OpenAIError(
            403,
            "The admin API is disabled: set MODELS_ADMIN_KEY on the model registry to enable it.",
            "permission_error",
            None,
            "admin_disabled",
        )
    if token is None:
        raise missing_api_key()
    if hmac.compare_digest(token.encode("utf-8"), admin_key.get_secret_value().encode("utf-8")):
        return
    if key_store.verify(token) is not None:
        raise OpenAIError(
            403,
            "This API key may call the model APIs but not the admin API; use the admin key.",
            "permission_error",
            None,
            "insufficient_permissions",
        )
    raise invalid_api_key()


def key_check_headers(record: ApiKeyRecord, manifest: Manifest) -> dict[str, str]:
    """What a successful key check tells nginx about the key. A key without a priority is interactive."""
    limits = record.limits
    headers = {KEY_ID_HEADER: record.id, KEY_PRIORITY_HEADER: (limits and limits.priority) or DEFAULT_PRIORITY}
    if limits is not None:
        headers[KEY_LIMITS_HEADER] = with_aliases(limits, manifest).to_header()
    return headers


def with_aliases(limits: KeyLimits, manifest: Manifest) -> KeyLimits:
    """The allow-list names a model by its id or any alias; the services compare names as sent, so every other name
    of an allowed manifest model is allowed too."""
    if limits.models is None:
        return limits
    names = list(limits.models)
    for name in limits.models:
        entry = manifest.entry(name)
        if entry is not None:
            names += [other for other in (entry.id, *entry.aliases) if other not in names]
    return limits.model_copy(update={"models": names})
