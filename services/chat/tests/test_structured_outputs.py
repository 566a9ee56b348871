"""Structured outputs on the real SmolLM2 model through the OpenAI SDK: response_format and the guided_* fields."""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest

MODEL_ID = "smollm2-135m-instruct"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0},
        "city": {"type": "string", "enum": ["Paris", "London", "Berlin"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
ASK_PERSON = [{"role": "user", "content": "Describe Bob, who is 30 and lives in Paris, as JSON."}]


def _stream_text(stream) -> tuple[str, str]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason][0]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_json_schema_output_validates(client: openai.OpenAI, temperature: float) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK_PERSON,
        response_format=PERSON_FORMAT,
        temperature=temperature,
        seed=7,
        max_tokens=80,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), PERSON)


def test_json_schema_streaming_equals_non_streaming(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL_ID, messages=ASK_PERSON, response_format=PERSON_FORMAT, temperature=0, max_tokens=80)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    text, finish = _stream_text(client.chat.completions.create(stream=True, **kwargs))
    assert text == full and finish == "stop"
    jsonschema.validate(json.loads(text), PERSON)


def test_sdk_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    from pydantic import BaseModel

    class Capital(BaseModel):
        country: str
        capital: str

    messages = [{"role": "user", "content": "What is the capital of France? Answer in JSON."}]
    parsed = client.chat.completions.parse(
        model=MODEL_ID, messages=messages, response_format=Capital, temperature=0, max_tokens=40
    )
    assert isinstance(parsed.choices[0].message.parsed, Capital)


def test_json_object_is_a_json_object(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Give the name and age of a person as a JSON object."}]
    response = client.chat.completions.create(
        model=MODEL_ID, messages=messages, response_format={"type": "json_object"}, temperature=0, max_tokens=60
    )
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_guided_regex_and_grammar_extensions(client: openai.OpenAI) -> None:
    regex = r"(Yes|No), because [a-z ,]{5,60}\."
    messages = [{"role": "user", "content": "Is Paris in France?"}]
    response = client.chat.completions.create(
        model=MODEL_ID, messages=messages, temperature=0, max_tokens=40, extra_body={"guided_regex": regex}
    )
    assert re.fullmatch(regex, response.choices[0].message.content)
    grammar = 'start: answer " " number\nanswer: "yes" | "no"\nnumber: /[0-9]{1,3}/'
    text, finish = _stream_text(
        client.chat.completions.create(
            model=MODEL_ID, messages=messages, max_tokens=20, stream=True, extra_body={"guided_grammar": grammar}
        )
    )
    assert re.fullmatch(r"(yes|no) [0-9]{1,3}", text) and finish == "stop"


def test_completions_take_guided_json(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}}}
    response = client.completions.create(
        model=MODEL_ID,
        prompt="The sky's colour as JSON:",
        max_tokens=30,
        temperature=0,
        extra_body={"guided_json": schema},
    )
    jsonschema.validate(json.loads(response.choices[0].text), schema)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": 3}}}},
            "response_format.json_schema.schema",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.json_schema.name",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"guided_regex": "a(b"}, "guided_regex"),
        ({"guided_grammar": "start: nothing_here"}, "guided_grammar"),
        ({"response_format": {"type": "json_object"}, "guided_regex": "a+"}, "guided_regex"),
    ],
)
def test_invalid_constraints_are_400_naming_the_field(chat_server, extra: dict, param: str) -> None:
    client = chat_server.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL_ID, messages=ASK_PERSON, max_tokens=5, stream=True, extra_body=extra
        )  # a stream too: the refusal comes before any byte of it
    assert info.value.param == param
