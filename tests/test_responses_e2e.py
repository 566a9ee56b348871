"""/v1/responses end to end through nginx on the real model: the OpenAI SDK (plain, streamed, tools, chains,
conversations, stored responses per key, every refusal) and the OpenAI Agents SDK running an agent with a tool.
"""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from stack_testing import Stack
from test_conversations_e2e import _new_key
from test_observability_e2e import _wait_spans

CHAT_MODEL = "smollm2-135m-instruct"
PREFIX_BLOCK_TOKENS = 8  # the chat service's default CHAT_PREFIX_BLOCK_TOKENS
GREEDY = {"temperature": 0, "max_output_tokens": 64}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_plain_streamed_and_raw_streamed_agree(stack: Stack) -> None:
    client = stack.openai()
    ask = {"model": CHAT_MODEL, "input": "Name a colour.", "instructions": "Be brief.", **GREEDY}
    response = client.responses.create(**ask)  # type: ignore[arg-type]
    assert response.output_text and response.status == "completed"
    with client.responses.stream(**ask) as stream:  # type: ignore[arg-type]
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    raw = list(client.responses.create(stream=True, **ask))  # type: ignore[arg-type]
    assert text == final.output_text == response.output_text
    assert "".join(e.delta for e in raw if e.type == "response.output_text.delta") == response.output_text
    assert [e.sequence_number for e in raw] == list(range(len(raw)))
    assert raw[0].type == "response.created" and raw[-1].type == "response.completed"
    assert client.responses.retrieve(final.id).output_text == response.output_text


def test_max_output_tokens_gives_incomplete(stack: Stack) -> None:
    response = stack.openai().responses.create(model=CHAT_MODEL, input="Write a long poem.", max_output_tokens=4)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 4


def test_json_schema_text_format(stack: Stack) -> None:
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "rainy": {"type": "boolean"}},
        "required": ["city", "rainy"],
        "additionalProperties": False,
    }
    response = stack.openai().responses.create(
        model=CHAT_MODEL,
        input="Describe the weather in a city.",
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema}},
        temperature=0,
        max_output_tokens=60,
    )
    jsonschema.validate(json.loads(response.output_text), schema)


def test_a_tool_round_trip_and_a_chain_like_chat(stack: Stack) -> None:
    client = stack.openai()
    call_turn = client.responses.create(
        model=CHAT_MODEL,
        input="What is the weather in Oslo?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
        max_output_tokens=40,
    )
    (call,) = [item for item in call_turn.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    answer = client.responses.create(
        model=CHAT_MODEL,
        previous_response_id=call_turn.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Snow, -3 degrees"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        **GREEDY,
    )
    assert answer.output_text
    # The same turns by hand to chat completions: the same prompt, token for token.
    chat = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "user", "content": "What is the weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.call_id, "content": "Snow, -3 degrees"},
        ],
        tools=[{"type": "function", "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"}}],  # type: ignore[list-item]
        temperature=0,
        max_tokens=64,
    )
    assert answer.usage is not None and chat.usage is not None
    assert answer.usage.input_tokens == chat.usage.prompt_tokens
    assert answer.output_text == chat.choices[0].message.content


def test_three_turn_chain_matches_chat_and_hits_the_prefix_cache(stack: Stack) -> None:
    client = stack.openai()
    messages: list[dict] = []
    previous, earlier_turn = None, 0
    for question in ["I live in Lima.", "Where do I live?", "And what country is that in?"]:
        response = client.responses.create(
            model=CHAT_MODEL,
            input=question,
            previous_response_id=previous,  # type: ignore[arg-type]
            instructions="Be brief." if previous is None else None,
            **GREEDY,
        )
        messages.append({"role": "user", "content": question})
        # Instructions are not carried over: only the first turn's prompt has them.
        sent = [{"role": "system", "content": "Be brief."}, *messages] if previous is None else messages
        chat = client.chat.completions.create(model=CHAT_MODEL, messages=sent, temperature=0, max_tokens=64)  # type: ignore[arg-type]
        assert response.usage is not None and chat.usage is not None
        assert response.usage.input_tokens == chat.usage.prompt_tokens
        assert response.output_text == chat.choices[0].message.content
        if earlier_turn:  # the third turn: the second's prompt came from the prefix cache (its reply is not kept)
            cached = response.usage.input_tokens_details.cached_tokens
            assert earlier_turn - PREFIX_BLOCK_TOKENS <= cached < response.usage.input_tokens
        # The first turn's instructions are not in the second's prompt, so the second starts afresh.
        earlier_turn = response.usage.input_tokens if previous is not None else 0
        messages.append({"role": "assistant", "content": response.output_text})
        previous = response.id


def test_a_conversation_gets_the_input_and_the_output(stack: Stack) -> None:
    client = stack.openai()
    conversation = client.conversations.create(items=[{"role": "user", "content": "My cat is called Tom."}])
    response = client.responses.create(
        model=CHAT_MODEL, input="What is my cat called?", conversation=conversation.id, **GREEDY
    )
    items = list(client.conversations.items.list(conversation.id, order="asc"))
    texts = [(item.role, item.content[0].text) for item in items]  # type: ignore[union-attr]
    assert texts == [
        ("user", "My cat is called Tom."),
        ("user", "What is my cat called?"),
        ("assistant", response.output_text),
    ]
    assert response.conversation is not None and response.conversation.id == conversation.id


def test_stored_responses_are_private_to_their_key(stack: Stack) -> None:
    alice, bob = _new_key(stack, "resp-alice"), _new_key(stack, "resp-bob")
    as_alice, as_bob = stack.openai(alice["key"]), stack.openai(bob["key"])
    response = as_alice.responses.create(
        model=CHAT_MODEL, input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}], **GREEDY
    )
    page = as_alice.responses.input_items.list(response.id, order="asc", limit=1)
    assert [item.content[0].text for item in page] == ["one", "two"]  # type: ignore[union-attr]  # paged by the SDK
    newest = as_alice.responses.input_items.list(response.id, limit=1)
    assert newest.has_more and newest.data[0].content[0].text == "two"  # type: ignore[union-attr]
    for call in (
        lambda: as_bob.responses.retrieve(response.id),
        lambda: as_bob.responses.input_items.list(response.id),
        lambda: as_bob.responses.delete(response.id),
        lambda: as_bob.responses.create(model=CHAT_MODEL, input="hi", previous_response_id=response.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    as_alice.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as missing:
        as_alice.responses.create(model=CHAT_MODEL, input="hi", previous_response_id=response.id)
    assert missing.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert missing.value.body["message"] == f"Previous response with id '{response.id}' not found."  # type: ignore[index]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
        ({"background": True}, "background"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"include": ["file_search_call.results"]}, "include"),
        ({"previous_response_id": "resp_x", "conversation": "conv_x"}, "conversation"),
        # A remote image (fetching is off by default): the param names the part's URL.
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER_TOOL]}, "tool_choice"),
        ({"truncation": "sometimes"}, "truncation"),
        ({"max_output_tokens": 100000}, "input"),
    ],
)
def test_what_cannot_be_done_is_a_400_naming_the_field(stack: Stack, fields: dict, param: str) -> None:
    body = {"model": CHAT_MODEL, "input": "hi", **fields}
    with stack.http() as http:
        refused = http.post("/v1/responses", json=body, headers={"Authorization": f"Bearer {stack.api_key}"})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == param, error


def test_the_trace_names_the_operation(stack: Stack) -> None:
    raw = stack.openai().responses.with_raw_response.create(model=CHAT_MODEL, input="Hi", max_output_tokens=2)
    trace_id = raw.headers["x-request-id"]
    spans = _wait_spans(stack, trace_id, {f"responses {CHAT_MODEL}"})
    (generation,) = spans[f"responses {CHAT_MODEL}"]
    assert generation["attributes"]["gen_ai.operation.name"] == "responses"


def test_an_agents_sdk_agent_uses_its_tool(stack: Stack) -> None:
    from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from pydantic import BaseModel, Field

    set_tracing_disabled(True)

    class Report(BaseModel):  # a structured final output (text.format json_schema), which keeps the small model terse
        condition: str = Field(max_length=40)
        temperature_celsius: int

    looked_up: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        looked_up.append(city)
        return "It is sunny and 25 degrees."

    client = openai.AsyncOpenAI(
        base_url=stack.base_url + "/v1",
        api_key=stack.api_key,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=stack.ssl_context(), timeout=120),
    )
    agent = Agent(
        name="weather",
        instructions="Answer questions about the weather. Repeat what the tool says.",
        model=OpenAIResponsesModel(model=CHAT_MODEL, openai_client=client),
        # The 135M model would not call a tool on its own: force the first call (the SDK resets it after use).
        model_settings=ModelSettings(tool_choice="get_weather", temperature=0, max_tokens=256),
        tools=[get_weather],
        output_type=Report,
    )
    result = asyncio.run(Runner.run(agent, "What is the weather in Rome?", max_turns=4))
    assert looked_up == ["Rome"]
    assert isinstance(result.final_output, Report)
    assert result.final_output.temperature_celsius == 25  # only the tool said so
