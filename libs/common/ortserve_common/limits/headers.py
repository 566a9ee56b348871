"""OpenAI's rate-limit headers, sent on every answer to a key with a per-minute limit, and Retry-After on refusals."""

from __future__ import annotations

import math

from ortserve_common.limits.model import KeyLimits
from ortserve_common.limits.store import Admission


def reset_duration(seconds: float) -> str:
    """OpenAI writes the time to a window's reset as a Go duration: "20ms", "17.5s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"


def ratelimit_headers(limits: KeyLimits, admission: Admission) -> dict[str, str]:
    """The requests trio for a requests_per_minute limit, the tokens trio for a tokens_per_minute limit."""
    headers: dict[str, str] = {}
    reset = reset_duration(admission.minute_reset_s)
    if limits.requests_per_minute is not None:
        remaining = max(0, limits.requests_per_minute - admission.requests_this_minute)
        headers["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(remaining)
        headers["x-ratelimit-reset-requests"] = reset
    if limits.tokens_per_minute is not None:
        remaining = max(0, limits.tokens_per_minute - admission.tokens_this_minute)
        headers["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        headers["x-ratelimit-remaining-tokens"] = str(remaining)
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def retry_after(seconds: float) -> str:
    """Whole seconds, rounded up: Retry-After takes no fractions, and retrying early only earns another refusal."""
    return str(max(1, math.ceil(seconds)))
