"""What a benchmark run measures: concurrencies, repeats, prompt kinds and sizes (`--quick` or the full run)."""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_KINDS = ("short", "long", "shared")


@dataclass(frozen=True)
class Plan:
    concurrencies: tuple[int, ...]
    repeats: int
    rounds: int  # requests per client in a phase
    min_requests: int
    max_tokens: int
    embed_clients: tuple[int, ...]
    embed_batches: tuple[int, ...]
    embed_texts: int
    quiet_wait_s: float  # longest wait before a phase for other processes to go quiet
    prompts: tuple[str, ...] = PROMPT_KINDS

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls((1, 2), 2, 1, 2, 32, (1, 4), (1, 32), 128, 0)
        # 8 requests at least: the one-stream phases are the denominators of every ratio the targets set, and at 4
        # requests (~4 s) one disturbance moved a phase by up to 30 %.
        return cls((1, 2, 4, 8), 3, 2, 8, 128, (1, 4, 16), (1, 32), 512, 10)
