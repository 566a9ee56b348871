"""Unit tests of reading tool calls out of a reply, fed whole or in pieces of every size."""

from __future__ import annotations

import pytest
from chat_service.tool_parser import ToolCallParser

NAMES = {"get_weather", "get_time"}


def _parse(text: str, step: int, forced: bool = False) -> tuple[str, list[tuple[str, str]], list]:
    parser = ToolCallParser(NAMES, forced)
    content, deltas = "", []
    for i in range(0, len(text), step):
        out = parser.feed(text[i : i + step])
        content += out.content
        deltas += out.deltas
    out = parser.finish()
    content += out.content
    deltas += out.deltas
    return content, [(c.name, c.arguments) for c in parser.calls], deltas


STEPS = [1, 2, 5, 1000]


@pytest.mark.parametrize("step", STEPS)
def test_forced_bare_call_streams_header_then_argument_fragments(step: int) -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Pa\\"ris }", "days": [1, {"a": 2}]}}'
    content, calls, deltas = _parse(text, step, forced=True)
    assert content == ""
    assert calls == [("get_weather", '{"city": "Pa\\"ris }", "days": [1, {"a": 2}]}')]
    assert deltas[0].id and deltas[0].name == "get_weather" and deltas[0].arguments == ""
    assert all(d.id is None and d.name is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == calls[0][1]


@pytest.mark.parametrize("step", STEPS)
def test_tagged_calls_in_auto_mode_several_in_a_row(step: int) -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    content, calls, deltas = _parse(text, step)
    assert content == ""
    assert calls == [("get_weather", '{"city": "Paris"}'), ("get_time", "{}")]
    assert [d.index for d in deltas if d.id] == [0, 1]
    assert len({d.id for d in deltas if d.id}) == 2


@pytest.mark.parametrize("step", STEPS)
def test_other_key_order_is_parsed_whole_at_the_end(step: int) -> None:
    content, calls, _ = _parse('<tool_call>{"arguments": {"city": "Oslo"}, "name": "get_weather"}</tool_call>', step)
    assert content == "" and calls == [("get_weather", '{"city": "Oslo"}')]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    "text",
    [
        "The weather is fine.",
        "  <tool",  # a tag that never completes
        '{"answer": 42}',  # JSON, but not a call
        '{"name": "unknown_tool", "arguments": {}}',
        "Sure! <tool_call>",  # calls must open the reply
    ],
)
def test_replies_that_are_not_calls_stay_content(text: str, step: int) -> None:
    content, calls, deltas = _parse(text, step)
    assert (content, calls, deltas) == (text, [], [])


def test_a_call_cut_by_max_tokens_keeps_what_was_written() -> None:
    _, calls, _ = _parse('{"name": "get_weather", "arguments": {"city": "Par', 3, forced=True)
    assert calls == [("get_weather", '{"city": "Par')]
    content, calls, _ = _parse('{"name": "get_wea', 3, forced=True)
    assert content == '{"name": "get_wea' and calls == []


@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls_false_keeps_the_first_call_only(parallel: bool) -> None:
    from chat_service.chat_choices import ChatChoice  # noqa: PLC0415
    from chat_service.generation import TextPiece  # noqa: PLC0415
    from chat_service.tools import plan_tools  # noqa: PLC0415
    from ortserve_common.protocol.chat import ToolDefinition  # noqa: PLC0415

    tools = [ToolDefinition.model_validate({"type": "function", "function": {"name": n}}) for n in sorted(NAMES)]
    plan = plan_tools(tools, "auto", None, parallel_tool_calls=parallel)
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    streamed, whole = ChatChoice(0, plan, None, False), ChatChoice(0, plan, None, False)
    chunks = [streamed.delta(TextPiece(text[i : i + 7], [])) for i in range(0, len(text), 7)]
    chunks += streamed.final("stop")
    whole.add(TextPiece(text, []))
    expected = ["get_weather", "get_time"] if parallel else ["get_weather"]
    message = whole.choice("stop").message
    assert [c.function.name for c in message.tool_calls or []] == expected
    streamed_calls = [t for c in chunks if c is not None and c.delta.tool_calls for t in c.delta.tool_calls]
    assert [t.function.name for t in streamed_calls if t.function and t.function.name] == expected
    assert {t.index for t in streamed_calls} == set(range(len(expected)))


def test_parallel_tool_calls_without_tools_is_refused() -> None:
    from chat_service.tools import plan_tools  # noqa: PLC0415
    from ortserve_common.errors import OpenAIError  # noqa: PLC0415

    with pytest.raises(OpenAIError) as refused:
        plan_tools(None, None, None, parallel_tool_calls=False)
    assert refused.value.param == "parallel_tool_calls"
