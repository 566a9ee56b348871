"""Request inputs → model inputs: prefixes, tokenization, limits and truncation, each refusal naming its field.

Runs on a worker thread (tokenizing a large request takes a while); raises OpenAIError, knows no HTTP.
"""

from __future__ import annotations

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.protocol.embeddings import InputType

from embeddings_service.engine.types import EncodedInput
from embeddings_service.model_table import ServedModel


def too_long(model: ServedModel, param: str, tokens: int) -> OpenAIError:
    return OpenAIError(
        400,
        f"{param} has {tokens} tokens, over this model's maximum of {model.max_length} tokens per input. Shorten it, "
        'or send "truncate": true to cut its tail.',
        param=param,
        code="context_length_exceeded",
    )


def _check_prefix_fits(model: ServedModel, prefix: str, instruction: str | None) -> None:
    """Truncation keeps the prefix whole, so the prefix (with the special tokens) must leave room for text."""
    if not prefix:
        return
    prefix_tokens = model.tokenizer.count_plain(prefix) + model.tokenizer.special_count
    if prefix_tokens >= model.max_length:
        param = "instruction" if instruction else "input_type"
        raise invalid_request(
            f"The prefix for this request takes {prefix_tokens} of the model's {model.max_length} tokens and leaves "
            "no room for the text.",
            param,
        )


def encode_texts(
    model: ServedModel,
    texts: list[str],
    params: list[str],
    input_type: InputType | None,
    instruction: str | None,
    truncate: bool,
) -> list[EncodedInput]:
    for text, param in zip(texts, params, strict=True):
        if text == "":
            raise invalid_request(f"{param} is an empty string; every input must have text.", param)
    prefixed = [model.prefixes.apply(text, input_type, instruction) for text in texts]
    encoded = model.tokenizer.encode_batch(prefixed)
    if any(len(ids) > model.max_length for ids in encoded):
        for ids, param in zip(encoded, params, strict=True):
            if len(ids) > model.max_length and not truncate:
                raise too_long(model, param, len(ids))
        _check_prefix_fits(model, model.prefixes.prefix_for(input_type, instruction), instruction)
        encoded = [model.tokenizer.truncate(ids) for ids in encoded]
    return [EncodedInput(ids) for ids in encoded]


def check_token_ids(
    model: ServedModel,
    sequences: list[list[int]],
    params: list[str],
    input_type: InputType | None,
    instruction: str | None,
    truncate: bool,
) -> list[EncodedInput]:
    """Token ids are the model's input exactly as sent (special tokens included, as the model's tokenizer gives
    them), so the ids of a text embed the same as the text."""
    if model.prefixes.prefix_for(input_type, instruction):
        param = "instruction" if instruction else "input_type"
        raise invalid_request(
            f"{param} adds a text prefix, which cannot be put in front of token ids; send text, or include the "
            "prefix's tokens in the ids.",
            param,
            "unsupported_value",
        )
    vocab = model.tokenizer.vocab_size
    items = []
    for ids, param in zip(sequences, params, strict=True):
        if not ids:
            raise invalid_request(f"{param} is an empty token list; every input must have tokens.", param)
        for position, token in enumerate(ids):
            if not 0 <= token < vocab:
                raise invalid_request(
                    f"{param}[{position}] is token id {token}, outside this model's vocabulary (0 to {vocab - 1}).",
                    f"{param}[{position}]",
                )
        if len(ids) > model.max_length:
            if not truncate:
                raise too_long(model, param, len(ids))
            ids = model.tokenizer.truncate(ids)
        items.append(EncodedInput(list(ids)))
    return items


def encode_pairs(
    model: ServedModel, query: str, documents: list[str], params: list[str], truncate: bool
) -> list[EncodedInput]:
    """Cross-encoder pairs; truncation cuts the document's tail and keeps the query whole."""
    query_tokens = model.tokenizer.count_plain(query) + model.tokenizer.pair_special_count
    if query_tokens >= model.max_length:
        raise OpenAIError(
            400,
            f"query has {query_tokens} tokens with the special tokens, leaving no room for a document in this "
            f"model's {model.max_length}-token input; shorten it.",
            param="query",
            code="context_length_exceeded",
        )
    items = model.tokenizer.encode_pairs(query, documents)
    for index, (item, param) in enumerate(zip(items, params, strict=True)):
        if len(item) > model.max_length:
            if not truncate:
                raise too_long(model, param, len(item))
            items[index] = model.tokenizer.encode_pair_truncated(query, documents[index])
    return items
