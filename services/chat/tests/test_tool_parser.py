"""Unit tests of reading tool calls out of a reply, in every family's format, fed whole, one character at a time
and in random pieces; and of what is not a call staying content, unchanged."""

from __future__ import annotations

import json
import random

import pytest
from chat_service.serving.chat_choices import ChatChoice
from chat_service.serving.generation import TextPiece
from chat_service.tools.parser import ToolCallDelta, tool_call_parser
from chat_service.tools.request import plan_tools
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import ToolDefinition

NAMES = {"get_weather", "get_time"}
PARIS = '{"city": "Paris"}'


def _pieces(text: str, chunking: int | str) -> list[str]:
    if isinstance(chunking, int):
        return [text[i : i + chunking] for i in range(0, len(text), chunking)]
    rng = random.Random(f"{chunking}:{text}")
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, len(text) // 3))) if len(text) > 1 else []
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _parse(
    text: str, chunking: int | str, forced: bool = False
) -> tuple[str, list[tuple[str, str]], list[ToolCallDelta]]:
    parser = tool_call_parser(NAMES, forced)
    content, deltas = "", []
    for piece in _pieces(text, chunking):
        out = parser.feed(piece)
        content += out.content
        deltas += out.deltas
    out = parser.finish()
    content += out.content
    deltas += out.deltas
    return content, [(c.name, c.arguments) for c in parser.calls], deltas


CHUNKINGS: list[int | str] = [1, 2, 3, 7, 10_000, "random-1", "random-2"]


# Forced calls (guided decoding writes the bare object) ---------------------------------------------------------------
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_forced_call_streams_header_then_argument_fragments(chunking: int | str) -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Pa\\"ris }", "days": [1, {"a": 2}]}}'
    content, calls, deltas = _parse(text, chunking, forced=True)
    assert content == ""
    assert calls == [("get_weather", '{"city": "Pa\\"ris }", "days": [1, {"a": 2}]}')]
    assert deltas[0].id and deltas[0].name == "get_weather" and deltas[0].arguments == ""
    assert all(d.id is None and d.name is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == calls[0][1]
    if chunking == 1:
        assert len(deltas) > 10, "the arguments stream as they are written"


def test_a_forced_call_cut_by_max_tokens_keeps_what_was_written() -> None:
    _, calls, _ = _parse('{"name": "get_weather", "arguments": {"city": "Par', 3, forced=True)
    assert calls == [("get_weather", '{"city": "Par')]
    content, calls, _ = _parse('{"name": "get_wea', 3, forced=True)
    assert content == '{"name": "get_wea' and calls == []


# Calls the model makes by itself (tool_choice auto) ------------------------------------------------------------------
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
TIME_CALL = '{"name": "get_time", "arguments": {}}'
WEATHER = ("get_weather", PARIS)
TIME = ("get_time", "{}")

FORMATS = {
    "qwen tags": (f"<tool_call>\n{CALL}\n</tool_call>", "", [WEATHER]),
    "qwen tags, two": (
        f"<tool_call>\n{CALL}\n</tool_call>\n<tool_call>\n{TIME_CALL}\n</tool_call>",
        "",
        [WEATHER, TIME],
    ),
    "qwen tag after a sentence": (f"Let me look.\n<tool_call>\n{CALL}\n</tool_call>", "Let me look.", [WEATHER]),
    "qwen tag, other key order": (
        '<tool_call>{"arguments": {"city": "Paris"}, "name": "get_weather"}</tool_call>',
        "",
        [WEATHER],
    ),
    "qwen tag, closing tag cut off": (f"<tool_call>\n{CALL}\n</tool_", "", [WEATHER]),
    "qwen tag holding a list": (f"<tool_call>[{CALL}, {TIME_CALL}]</tool_call>", "", [WEATHER, TIME]),
    "fenced json (Qwen2.5-Coder-0.5B)": (f"```json\n{CALL}\n```", "", [WEATHER]),
    "fence without a language": (f"```\n{CALL}\n```", "", [WEATHER]),
    "fence on one line": (f"```json {CALL}```", "", [WEATHER]),
    "fenced list": (f"```json\n[{CALL}, {TIME_CALL}]\n```", "", [WEATHER, TIME]),
    "fence with two objects": (f"```json\n{CALL}\n{TIME_CALL}\n```", "", [WEATHER, TIME]),
    "sentence, fenced call, sentence": (
        f"I'll check that for you.\n\n```json\n{CALL}\n```\n\nOne moment.",
        "I'll check that for you.\n\nOne moment.",
        [WEATHER],
    ),
    "llama 3 json, parameters": ('{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [WEATHER]),
    "llama 3.2 json with type": (
        '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [WEATHER],
    ),
    "bare list": (f" [{CALL}, {TIME_CALL}]", "", [WEATHER, TIME]),
    "bare object then text": (f"{CALL}\nThat asks for the weather.", "\nThat asks for the weather.", [WEATHER]),
    "arguments as a JSON string": ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}', "", [WEATHER]),
    "mistral": (f"[TOOL_CALLS] [{CALL}, {TIME_CALL}]", "", [WEATHER, TIME]),
    "python tag": ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [WEATHER]),
    "python tag, calls separated by ;": (f"<|python_tag|>{CALL}; {TIME_CALL}", "", [WEATHER, TIME]),
    "unicode arguments": (
        '{"name": "get_weather", "arguments": {"city": "東京"}}',
        "",
        [("get_weather", '{"city": "東京"}')],
    ),
}


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("name", list(FORMATS))
def test_calls_in_each_format_are_found_however_the_reply_is_cut(name: str, chunking: int | str) -> None:
    text, expected_content, expected_calls = FORMATS[name]
    content, calls, deltas = _parse(text, chunking)
    assert (content, calls) == (expected_content, expected_calls)
    assert [(d.index, d.name, d.arguments) for d in deltas] == [(i, n, a) for i, (n, a) in enumerate(calls)]
    assert len({d.id for d in deltas}) == len(deltas) and all(d.id and d.id.startswith("call_") for d in deltas)
    assert all(isinstance(json.loads(arguments), dict) for _, arguments in calls)


NOT_CALLS = {
    "prose": "The weather is fine.",
    "whitespace around prose": "\n  The weather is fine.  \n",
    "a tag that never completes": "  <tool",
    "an opening tag and nothing": "Sure! <tool_call>",
    "ordinary JSON": '{"answer": 42}',
    "ordinary JSON with a name": '{"name": "Ada", "age": 36}',
    "a list of numbers": "[1, 2, 3]",
    "a bracketed note": "[Note] It is sunny.",
    "undeclared tool, bare": '{"name": "get_stock", "arguments": {}}',
    "undeclared tool, tagged": '<tool_call>\n{"name": "get_stock", "arguments": {}}\n</tool_call>',
    "undeclared tool, fenced": '```json\n{"name": "get_stock", "arguments": {}}\n```',
    "undeclared tool in a list": f'```json\n[{CALL}, {{"name": "get_stock", "arguments": {{}}}}]\n```',
    "prose with a code block of JSON": 'Here is the data:\n```json\n{"city": "Paris", "temp": 21}\n```\nEnjoy!',
    "a python code block": "```python\nprint(get_weather('Paris'))\n```\nThat is how.",
    "a python block holding call JSON": f"```python\nx = {CALL}\n```",
    "a python block holding just the call's dict": f"```python\n{CALL}\n```",
    "a call in the middle of prose": f"You could send {CALL} to the API.",
    "broken JSON, bare": '{"name": "get_weather", "arguments": {"city": Paris}}',
    "broken JSON, tagged": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>',
    "broken JSON, fenced": '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}\n```\nok',
    "a call cut off": '{"name": "get_weather", "arguments": {"ci',
    "extra keys": '{"name": "get_weather", "city": "Paris"}',
    "arguments not an object": '{"name": "get_weather", "arguments": ["Paris"]}',
    "arguments a string that is not JSON": '{"name": "get_weather", "arguments": "Paris"}',
    "text after the call inside the fence": f"```json\n{CALL}\nthen the forecast\n```",
    "not a python tag call": "<|python_tag|>get_weather(city='Paris')",
    "inline backticks": "Use `get_weather` or ``get_time``.",
}


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("name", list(NOT_CALLS))
def test_replies_that_are_not_calls_stay_content_unchanged(name: str, chunking: int | str) -> None:
    text = NOT_CALLS[name]
    assert _parse(text, chunking) == (text, [], [])


def test_content_that_cannot_be_a_call_is_not_held_back() -> None:
    parser = tool_call_parser(NAMES, forced=False)
    assert parser.feed("The weather").content == "The weather"
    assert parser.feed(" in Paris <too").content == " in Paris"  # "<too" may open a tag
    assert parser.feed("k>").content == " <took>"
    parser = tool_call_parser(NAMES, forced=False)
    assert parser.feed("```pyth").content == ""  # a fence: which language is still open
    assert parser.feed("on\nx = 1\n").content == "```python\nx = 1"  # a code block: out at once (but its newline)
    parser = tool_call_parser(NAMES, forced=False)
    assert parser.feed('{"answer"').content == '{"answer"'  # decided by its first key
    parser = tool_call_parser(NAMES, forced=False)
    assert parser.feed('```json\n{"name": "get_st').content == '```json\n{"name": "get_st'  # no such tool
    parser = tool_call_parser(NAMES, forced=False)
    assert parser.feed('```json\n{"name": "get_weather", "arguments": {').content == ""  # may be a call: held


# Through the chat choice: OpenAI's delta layout, parallel_tool_calls -------------------------------------------------
def _plan(parallel: bool | None = None):
    tools = [ToolDefinition.model_validate({"type": "function", "function": {"name": n}}) for n in sorted(NAMES)]
    return plan_tools(tools, "auto", None, parallel_tool_calls=parallel)


def _stream(text: str, plan, step: int) -> list:
    choice = ChatChoice(0, plan, None, False)
    chunks = [choice.delta(TextPiece(text[i : i + step], [])) for i in range(0, len(text), step)]
    return [c for c in [*chunks, *choice.final("stop")] if c is not None]


@pytest.mark.parametrize("step", [1, 4, 10_000])
def test_a_fenced_call_streams_as_one_openai_tool_call_delta(step: int) -> None:
    chunks = _stream(f"```json\n{CALL}\n```", _plan(), step)
    assert not any(c.delta.content for c in chunks)
    [call] = [t for c in chunks for t in c.delta.tool_calls or []]
    assert call.index == 0 and call.id and call.type == "function"
    assert (
        call.function
        and call.function.name == "get_weather"
        and json.loads(call.function.arguments or "") == {"city": "Paris"}
    )
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    whole = ChatChoice(0, _plan(), None, False)
    whole.add(TextPiece(f"```json\n{CALL}\n```", []))
    result = whole.choice("stop")
    assert result.finish_reason == "tool_calls" and result.message.content is None
    assert [(c.function.name, c.function.arguments) for c in result.message.tool_calls or []] == [WEATHER]


def test_a_reply_that_is_not_a_call_finishes_with_stop_and_its_text() -> None:
    chunks = _stream(NOT_CALLS["prose with a code block of JSON"], _plan(), 3)
    assert "".join(c.delta.content or "" for c in chunks) == NOT_CALLS["prose with a code block of JSON"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("text", [FORMATS["qwen tags, two"][0], FORMATS["fenced list"][0]])
def test_parallel_tool_calls_false_keeps_the_first_call_only(parallel: bool, text: str) -> None:
    plan = _plan(parallel)
    chunks = _stream(text, plan, 7)
    whole = ChatChoice(0, plan, None, False)
    whole.add(TextPiece(text, []))
    expected = ["get_weather", "get_time"] if parallel else ["get_weather"]
    message = whole.choice("stop").message
    assert [c.function.name for c in message.tool_calls or []] == expected
    streamed_calls = [t for c in chunks if c.delta.tool_calls for t in c.delta.tool_calls]
    assert [t.function.name for t in streamed_calls if t.function and t.function.name] == expected
    assert {t.index for t in streamed_calls} == set(range(len(expected)))


def test_parallel_tool_calls_without_tools_is_refused() -> None:
    with pytest.raises(OpenAIError) as refused:
        plan_tools(None, None, None, parallel_tool_calls=False)
    assert refused.value.param == "parallel_tool_calls"
