"""The bearer-token parser every service uses, and the admin-key check that guards the /admin APIs."""

from __future__ import annotations

import hmac

from ortserve_common.errors import OpenAIError


def bearer_token(authorization: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>`; the scheme is case-insensitive (RFC 9110), the key is not."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_admin_key(authorization: str | None, admin_key: str | None) -> None:
    """Raise 403 when the admin API is disabled, 401 on a missing or wrong key (constant-time, case-sensitive)."""
    if not admin_key:
        raise OpenAIError(
            403, "The admin API is disabled: no admin key is configured.", "permission_error", None, "admin_disabled"
        )
    token = bearer_token(authorization)
    if token is None:
        raise OpenAIError(
            401, "Missing admin key (Authorization: Bearer ...).", "authentication_error", None, "missing_api_key"
        )
    if not hmac.compare_digest(token.encode(), admin_key.encode()):
        raise OpenAIError(401, "Invalid admin key.", "authentication_error", None, "invalid_api_key")
