"""The batch scheduler's figures for /metrics and /v1/models, read from another thread while the scheduler runs."""

from __future__ import annotations

from chat_service.engine.batched.kv_cache import SlotKVCache
from chat_service.engine.batched.prefix_cache import PrefixCache
from chat_service.engine.batched.rows import BatchRow
from chat_service.engine.batched.slots import SlotTable
from chat_service.engine.batched.speculation import SpeculationCounts
from chat_service.engine.types import EngineStats
from chat_service.engine.waiting import WaitingRows


def scheduler_stats(
    table: SlotTable[BatchRow],
    pending: WaitingRows[BatchRow],
    cache: SlotKVCache,
    prefix: PrefixCache,
    steps: int,
    speculation: SpeculationCounts,
) -> EngineStats:
    """Each figure is read once, so they may be a step apart from one another, never torn."""
    rows, staged = list(table.rows), table.staged
    used = sum(row.length for row in rows) + (staged.length if staged is not None else 0)
    return EngineStats(
        rows_decoding=len(rows),
        rows_waiting=len(pending),
        rows_waiting_batch=pending.depth("batch"),
        kv_slots=cache.slots,
        kv_slots_used=len(rows) + (staged is not None),
        kv_positions_used=used,
        kv_positions_allocated=cache.slots * cache.capacity,
        kv_bytes_per_position=cache.bytes_per_position,
        prefix_cache_hit_tokens=prefix.hit_tokens,
        prefix_cache_blocks=len(prefix),
        decode_steps=steps,
        spec_verify_steps=speculation.verify_calls,
        spec_draft_tokens=speculation.drafted,
        spec_accepted_tokens=speculation.accepted,
        spec_rows_given_up=speculation.given_up,
    )
