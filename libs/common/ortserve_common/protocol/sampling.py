"""Sampling fields shared by chat and text completions, with OpenAI's ranges."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from ortserve_common.protocol.common import OpenAIModel, StreamOptions


def check_stop_sequences(stop: list[str] | None) -> None:
    """An empty stop string would end every generation at once: requests, templates and model defaults refuse it
    alike (a ValueError, which pydantic reports on the field)."""
    if stop is not None and any(s == "" for s in stop):
        raise ValueError("stop sequences must not be empty")


MAX_STOP_STRINGS = 4
# Samplers other servers (llama.cpp, vLLM, Ollama) know and this one does not implement: refused by name, never
# ignored in silence, so a client that relies on one learns it here.
UNSUPPORTED_SAMPLERS = (
    "typical_p",
    "tfs_z",
    "top_a",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "dynatemp_range",
    "dynatemp_exponent",
    "xtc_probability",
    "xtc_threshold",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "top_n_sigma",
    "repeat_last_n",
    "penalty_last_n",
    "use_beam_search",
    "length_penalty",
)


MAX_SPECULATIVE_TOKENS = 16


class SpeculativeOptions(OpenAIModel):
    """Prompt-lookup speculative decoding for this request, with the names of vLLM's speculative_config: "ngram"
    drafts from the request's own prompt and output (num_speculative_tokens at most per step; left out, the server's
    CHAT_PROMPT_LOOKUP_TOKENS), "none" turns it off. It never changes what is generated, only how fast."""

    method: Literal["ngram", "none"] = "ngram"
    num_speculative_tokens: int | None = Field(None, ge=1, le=MAX_SPECULATIVE_TOKENS)


class SamplingRequest(OpenAIModel):
    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(1, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    # Extensions (vLLM's names; the OpenAI SDK sends them with extra_body): guided decoding by a JSON schema, a
    # regular expression or a Lark grammar. At most one guidance per request, response_format included.
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_grammar: str | None = None
    # Known OpenAI fields that this server cannot honour yet; the serving layer refuses them rather than ignore them.
    logit_bias: dict[str, float] | None = None
    best_of: int | None = None
    # Extensions that vLLM's and llama.cpp's users expect: top_k (-1 or 0: off), min_p (a token is kept only if its
    # probability is at least min_p times the most likely one's; 0: off), repetition_penalty (HF/vLLM: every token
    # of the prompt and the output so far has its logit divided by it when positive, multiplied when not; 1: off).
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    # Extension: prompt-lookup speculation on or off for this request (left out: the server's CHAT_PROMPT_LOOKUP).
    speculative: SpeculativeOptions | None = None
    unsupported_fields: SkipJsonSchema[list[str]] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _note_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = [name for name in UNSUPPORTED_SAMPLERS if name in data]
            data = {**data, "unsupported_fields": found}
        return data

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop sequences are allowed")
        check_stop_sequences([value] if isinstance(value, str) else value)
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)
