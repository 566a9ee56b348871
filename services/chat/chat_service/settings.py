"""Chat service settings, read from CHAT_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from ortserve_common.models_dir import DEFAULT_MODELS_DIR
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from chat_service.process_settings import EngineProcessSettings


class ChatSettings(EngineProcessSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore", validate_default=True)

    model_path: Path | None = Field(
        None,
        description="One model: its ONNX Runtime GenAI folder (genai_config.json, model.onnx, tokenizer), served as "
        "model_id. Set this or models_file.",
    )
    model_id: str = Field(
        "smollm2-135m-instruct", min_length=1, description="Model id clients send as `model` (with model_path)."
    )
    models_file: Path | None = Field(
        None,
        description="Several models: a YAML or JSON file in the registry manifest's schema (services/models/"
        "manifest.yaml); each chat entry with a `path` is served with its aliases, `defaults` (samplers), "
        "`context_length` and `engine` settings (max_batch_size, threads, prefix_cache_mb). Set this or model_path.",
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated ids (or aliases) of the models_file entries to serve; empty serves every chat "
        "entry that has a path.",
    )
    models_dir: Path = Field(
        DEFAULT_MODELS_DIR,
        validation_alias=AliasChoices("CHAT_MODELS_DIR", "ORTSERVE_MODELS_DIR", "models_dir"),
        description="Folder that relative model paths (models_file entries, /admin/models/load) are taken under "
        "(ORTSERVE_MODELS_DIR also sets it).",
    )
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="Cap on prompt + completion tokens; defaults to the model's context length. A models_file "
        "entry's context_length takes its place for that model.",
    )
    engine: Literal["batched", "generator", "auto"] = Field(
        "batched",
        description="batched: continuous batching on onnxruntime; a graph it cannot run stops the load with one line "
        "naming the file and what does not fit. generator: one ONNX Runtime GenAI Generator per request. auto: "
        "batched where the graph fits, else generator (a warning says why); /v1/models names each model's engine.",
    )
    max_batch_size: int = Field(
        8,
        ge=1,
        le=256,
        description="Rows decoded together (KV slots) by the batched engine; KV memory is at most slots × context "
        "positions per model.",
    )
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="How long an idle batched engine waits before admitting, so that arrivals close together are "
        "admitted in one turn (up to max_prefills_per_step of them, shortest prompt first).",
    )
    max_prefills_per_step: int = Field(
        1,
        ge=1,
        le=256,
        description="New prompts the batched engine prefills between two decode steps: 1 lets arrivals in at a "
        "steady pace (running streams stall for one prefill at most); more serves a burst's first tokens sooner.",
    )
    refill_wait_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="When a request finishes while others decode, how long the batched engine holds its next step "
        "for a new request to take the freed slot: a client that sends its next request at once (an agent loop, a "
        "load test) is prefilled straight away instead of queueing behind the next arrival. 0 turns it off.",
    )
    prefix_cache_mb: int = Field(
        128,
        ge=0,
        description="Memory for the KV of prompt prefixes seen before (a repeated system prompt or conversation "
        "is then prefilled only past them), least recently used out first; 0 turns prefix reuse off. Batched engine. "
        "A token takes 23 KB on SmolLM2-135M, 12 KB on Qwen2.5-0.5B, 28 KB on Qwen2.5-1.5B in the default float16 "
        "KV cache (twice that with CHAT_KV_CACHE_DTYPE=float32): 128 MB holds a few shared system prompts; "
        "conversations with many open at once want more (docs/ENGINE_DESIGNS.md, Memory).",
    )
    prefix_block_tokens: int = Field(
        8,
        ge=1,
        le=1024,
        description="Prefix reuse granularity: prompts share cached KV in whole blocks of this many tokens. Small "
        "enough that a model's default system prompt (~24 tokens on Qwen2.5) is reused by every request.",
    )
    prefix_cache_replies: bool = Field(
        False,
        description="Also keep a finished reply's KV, so a conversation's next turn is prefilled only past it. Faster "
        "turns, but those positions were computed a token at a time and differ in the low bits from a cold prefill: "
        "a seeded request then no longer reproduces exactly whichever way it is served. Batched engine.",
    )
    batch_invariant: bool = Field(
        False,
        description="Never decode a row alone (a lone row runs beside a scratch row), so a row's logits do not depend "
        "on how many requests share its steps, on every CPU: a seeded request then gives the same tokens alone and "
        "in company. On AVX2-only CPUs one row and several take different int4 kernels; this costs a lone stream "
        "about one more row per step (docs/ENGINE_DESIGNS.md). Batched engine; needs max_batch_size >= 2.",
    )
    prompt_lookup: bool = Field(
        False,
        description="Prompt-lookup speculative decoding for requests that do not say (their `speculative` field): "
        "while a row decodes alone, drafts from its own prompt and output are checked in one call, so a reply that "
        "repeats its prompt (a code edit) takes fewer model calls, with the same sampling. Off by default: "
        "a speculating row's tokens come from calls of several tokens, whose logits differ in the low bits from the "
        "one-token decode path (up to 1.2 on SmolLM2, 0.4 on Qwen2.5-Coder-0.5B, measured), so a lone greedy request "
        "would no longer match the plain ONNX Runtime GenAI loop token for token at a near-tie; a request opts in "
        "with `speculative`. Batched engine; rows with a grammar, and batch-invariant mode, never speculate.",
    )
    prompt_lookup_tokens: int = Field(
        8,
        ge=1,
        le=16,
        description="Prompt-lookup drafts per verify call at most (the length adapts to what was accepted), for "
        "requests that do not give `speculative.num_speculative_tokens`.",
    )
    prompt_lookup_max_rows: int = Field(
        1,
        ge=1,
        description="Rows speculate only while at most this many decode: several new tokens over a past run at "
        "batch 1 only, so each speculating row takes a model call of its own, re-reading the weights: on "
        "Qwen2.5-Coder-0.5B a two-token call costs 1.09x a one-row step and a two-row batched step 1.19x "
        "(measured), so two rows each in a call of its own pay only past ~1.8 tokens per call.",
    )
    prompt_lookup_ngram: int = Field(
        3,
        ge=1,
        le=8,
        description="Drafts follow the latest earlier occurrence of the last n tokens, n from this down to 1.",
    )
    prompt_lookup_probation: int = Field(
        16,
        ge=0,
        description="A row that may speculate first decodes this many tokens one a step while the lookup's first "
        "guess for each is scored, and drafts only if it was right for 15 % of them or more: open chat, where it "
        "seldom is, then never pays for verify calls (each costs more than the one-token step it replaces). 0: "
        "draft from the first step (code edits gain a little; open chat pays until the row gives up).",
    )
    kv_cache_dtype: Literal["float32", "float16"] = Field(
        "float16",
        description="The batched engine's KV cache type. float16 (the default, as llama.cpp's cache) holds half the "
        "memory of the graph's own float32 (12 KB a position instead of 24 on Qwen2.5-Coder-0.5B; the prefix cache "
        "holds twice the tokens in its CHAT_PREFIX_CACHE_MB): the attention still computes in float32, but its "
        "inputs, the rotary embedding and its output are rounded to float16, which raised Qwen2.5-Coder-0.5B's "
        "perplexity by 0.1-0.2 % (measured). float32 gives a lone request the plain ONNX Runtime GenAI loop's "
        "tokens exactly, where float16 may differ from them at a near-tie. Batched engine (the generator engine "
        "keeps the graph's type).",
    )
    max_concurrency: int = Field(
        8,
        ge=1,
        description="Requests admitted at once per model (each model has its own admission and queue); further ones "
        "queue (then 429). The generator engine runs this many generations at once.",
    )
    interactive_reserved_slots: int = Field(
        1,
        ge=0,
        description="Places per model that batch-priority requests (X-Ortserve-Key-Priority: batch, set by the proxy "
        "from the key) may not take, among both its KV slots and its max_concurrency admitted requests: an "
        "interactive request that arrives during a batch flood then waits for one scheduler turn and its own "
        "prefill, not for a batch answer to end. Interactive requests may use every place; batch ones always keep "
        "at least one (the reserve is capped at max_batch_size - 1 and max_concurrency - 1). 0: priorities only "
        "order the queues.",
    )
    unload_grace_s: float = Field(
        30.0,
        ge=0,
        description="When a model is unloaded (/admin/models/unload), how long its running generations may take to "
        "finish; those still running then end with a model_unloaded error. New requests for it get 404 at once.",
    )
    default_temperature: float = Field(
        0.7, ge=0, le=2, description="Temperature when neither the request nor the model's defaults give one."
    )
    default_top_p: float = Field(
        1.0, ge=0, le=1, description="top_p when neither the request nor the model's defaults give one."
    )
    max_n: int = Field(8, ge=1, le=128, description="Largest n (choices per request) a request may ask for.")
    default_max_tokens: int = Field(
        1024,
        ge=1,
        description="max_tokens when neither the request nor the model's defaults give one (capped by context).",
    )
    data_dir: Path = Field(
        Path("run/chat-data"),
        description="Folder for the SQLite file that keeps conversations and prompt templates (when no database_url).",
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user:password@host/db) for conversations and prompt templates, "
        "shared by every chat instance; unset keeps them in SQLite under data_dir.",
    )
    conversation_reserve_tokens: int = Field(
        256,
        ge=1,
        description="Tokens kept free for the reply when a conversation's history is cut to fit the context, at "
        "most a quarter of the context (the request's max_tokens, when it gives one, takes their place).",
    )
    compact_keep_tokens: int = Field(
        1024,
        ge=0,
        description="/v1/responses/compact keeps the turns as they are when they come to at most this many prompt "
        "tokens; longer ones are replaced by the model's own summary of them.",
    )
    compact_summary_tokens: int = Field(
        256, ge=16, description="The longest summary, in tokens, that /v1/responses/compact lets the model write."
    )
    websocket_cache_responses: int = Field(
        16,
        ge=1,
        description="Responses a /v1/responses WebSocket keeps in its own cache (the newest), so that a store: false "
        "chain continues with previous_response_id on that socket; older ones are evicted.",
    )
    trace_content: bool = Field(
        False, description="Record prompt and output text on the gen_ai trace spans (off: prompts may be private)."
    )

    ocr: Literal["lazy", "startup", "off"] = Field(
        "lazy",
        description="Images (chat image_url, responses input_image, messages image blocks) are read by the PP-OCRv4 "
        "OCR models and the model is given the text: lazy loads them at the first image, startup before the "
        "service is ready, off refuses images with a 400 (and /v1/models then lists no `ocr` capability).",
    )
    ocr_threads: int = Field(2, ge=1, le=64, description="onnxruntime threads of one OCR run.")
    ocr_max_concurrent: int = Field(
        1, ge=1, le=64, description="Images read at once across requests; the others wait their turn."
    )
    ocr_max_side: int = Field(
        960,
        ge=64,
        le=4096,
        description="Text detection runs on the image scaled so that its longer side is at most this many pixels: "
        "larger reads smaller print, slower.",
    )
    ocr_min_score: float = Field(
        0.5, ge=0, le=1, description="Recognized lines with a lower confidence (0 to 1) are left out."
    )
    image_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest image file taken (decoded bytes); a larger one is a 400 `image_too_large`. The proxy's "
        "body limit on the image routes (proxy/) must leave room for it in base64 (4/3 as many bytes).",
    )
    image_max_pixels: int = Field(
        4096 * 4096, ge=1, description="Most pixels (width × height) an image may have; a larger one is a 400."
    )
    images_per_request: int = Field(8, ge=1, le=100, description="Most images one request may hold.")
    image_fetch_remote: bool = Field(
        False,
        description="Fetch http(s) image URLs. Off: only data URLs are taken, and a remote URL is a 400 "
        "`remote_image_refused` (fetching would let any client make this service send requests).",
    )
    image_fetch_timeout_s: float = Field(10.0, gt=0, description="Time limit on fetching one remote image.")

    @field_validator("model_path", "models_file", mode="before")
    @classmethod
    def _empty_source_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _one_source_of_models(self) -> ChatSettings:
        if (self.model_path is None) == (self.models_file is None):
            raise ValueError(
                "set CHAT_MODEL_PATH (one model) or CHAT_MODELS_FILE (several, from a models file), not "
                + ("both" if self.model_path is not None else "neither")
            )
        if self.models and self.models_file is None:
            raise ValueError("CHAT_MODELS picks entries of CHAT_MODELS_FILE, which is not set")
        return self
