"""The engine's own series on /metrics, per model, on the real SmolLM2 model: rows decoding and waiting, KV slots
and positions in use, prefix-cache hits and blocks, decode steps; and per-model admission behind the service-wide
running/waiting gauges."""

from __future__ import annotations

import re
from pathlib import Path

from chat_service.main import create_app
from chat_service.settings import ChatSettings
from fastapi.testclient import TestClient

MODEL = "smol"
SYSTEM = "You answer questions about the solar system in one short sentence, naming the planet first. " * 3


def _series(http: TestClient) -> dict[str, float]:
    """Every sample labelled model="smol", by name, from a scrape (service-wide gauges too)."""
    text = http.get("/metrics").text
    found = {m[1]: float(m[2]) for m in re.finditer(rf'^(ortserve_\w+)\{{model="{MODEL}"\}} (\S+)$', text, re.M)}
    found.update({m[1]: float(m[2]) for m in re.finditer(r"^(ortserve_requests_\w+) (\S+)$", text, re.M)})
    return found


def _chat(question: str, **extra: object) -> dict[str, object]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 8, **extra}


def test_engine_series_follow_a_stream_and_the_prefix_cache(smollm_path: Path, tmp_path: Path) -> None:
    # Rows asked to speculate draft from their first step (no probation), so that these short replies verify.
    settings = ChatSettings(
        model_path=smollm_path,
        model_id=MODEL,
        max_batch_size=2,
        max_model_len=1024,
        data_dir=tmp_path / "data",
        prompt_lookup_probation=0,
    )
    with TestClient(create_app(settings)) as http:
        idle = _series(http)
        assert idle["ortserve_engine_kv_slots"] == 2
        assert idle["ortserve_engine_rows_decoding"] == idle["ortserve_engine_kv_slots_used"] == 0
        assert idle["ortserve_engine_decode_steps_total"] == 0

        # 64 tokens: the row is still decoding when the scrape comes, however slow the machine.
        body = _chat("Name every planet.", stream=True, max_tokens=64, speculative={"method": "ngram"})
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            lines = r.iter_lines()
            chunks = (line for line in lines if line.startswith("data: {"))
            next(chunks)  # the role chunk: sent on admission, before the prefill
            next(chunks)  # the first token's: the prompt is in its slot and the row decodes
            during = _series(http)
            rest = list(lines)
        assert [line for line in rest if line][-1] == "data: [DONE]"
        assert during["ortserve_engine_rows_decoding"] == during["ortserve_engine_kv_slots_used"] == 1
        assert during["ortserve_engine_kv_positions_used"] > 60  # the prompt's positions, at least
        assert during["ortserve_engine_rows_waiting"] == 0
        assert (during["ortserve_requests_running"], during["ortserve_requests_waiting"]) == (1, 0)

        first = _series(http)
        assert first["ortserve_engine_rows_decoding"] == first["ortserve_engine_kv_positions_used"] == 0
        assert first["ortserve_engine_spec_verify_steps_total"] >= 1  # alone, the stream speculated
        assert first["ortserve_engine_prefix_cache_blocks"] >= 2  # the ~70-token system prompt's whole blocks
        assert first["ortserve_engine_prefix_cache_hit_tokens_total"] == 0

        asked = _chat("Which planet has rings?", speculative={"method": "ngram", "num_speculative_tokens": 4})
        reply = http.post("/v1/chat/completions", json=asked).json()
        second = _series(http)
        cached = reply["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert cached > 0 and second["ortserve_engine_prefix_cache_hit_tokens_total"] == cached
        # Alone in the engine it speculates (asked to): its prefill gives the first token, then each verify
        # call one token plus the drafts it accepted; no one-token decode step.
        assert second["ortserve_engine_decode_steps_total"] == first["ortserve_engine_decode_steps_total"]
        verified = second["ortserve_engine_spec_verify_steps_total"] - first["ortserve_engine_spec_verify_steps_total"]
        gained = (
            second["ortserve_engine_spec_accepted_tokens_total"] - first["ortserve_engine_spec_accepted_tokens_total"]
        )
        assert verified >= 1 and verified + gained == reply["usage"]["completion_tokens"] - 1
        assert second["ortserve_engine_spec_draft_tokens_total"] >= second["ortserve_engine_spec_accepted_tokens_total"]
        assert (second["ortserve_requests_running"], second["ortserve_requests_waiting"]) == (0, 0)

        # A request that does not ask (CHAT_PROMPT_LOOKUP is off by default): one decode step per later token.
        off = http.post("/v1/chat/completions", json=_chat("Which planet is red?")).json()
        third = _series(http)
        steps = third["ortserve_engine_decode_steps_total"] - second["ortserve_engine_decode_steps_total"]
        assert steps == off["usage"]["completion_tokens"] - 1
        assert third["ortserve_engine_spec_verify_steps_total"] == second["ortserve_engine_spec_verify_steps_total"]

        refused = http.post("/v1/chat/completions", json=_chat("Hi", speculative={"num_speculative_tokens": 0}))
        assert refused.status_code == 400 and refused.json()["error"]["param"] is not None
