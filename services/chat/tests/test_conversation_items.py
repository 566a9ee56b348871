"""Chat messages with tool calls ↔ conversation items, both ways."""

from __future__ import annotations

from chat_service.conversations.items import items_from_messages, items_from_reply, messages_from_items
from ortserve_common.protocol.chat import AssistantMessage, ChatMessage, ResponseFunctionCall, ResponseToolCall


def test_a_tool_round_trip_is_stored_as_openai_items_and_read_back_as_the_same_messages() -> None:
    messages = [
        ChatMessage.model_validate({"role": "user", "content": "Weather in Paris and Rome?"}),
        ChatMessage.model_validate(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": {"city": "Rome"}},
                    },
                ],
            }
        ),
        ChatMessage.model_validate({"role": "tool", "content": "sunny", "tool_call_id": "call_1"}),
        ChatMessage.model_validate({"role": "tool", "content": "rain", "tool_call_id": "call_2"}),
    ]
    reply = AssistantMessage(
        content="Checking once more.",
        tool_calls=[ResponseToolCall(id="call_3", function=ResponseFunctionCall(name="weather", arguments="{}"))],
    )
    items = items_from_messages(messages) + items_from_reply(reply)
    assert [item["type"] for item in items] == [
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
        "message",
        "function_call",
    ]
    assert items[2]["arguments"] == '{"city": "Rome"}'  # an object becomes OpenAI's JSON text
    back = messages_from_items(items)
    assert [m.role for m in back] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [c.id for c in back[1].tool_calls or []] == ["call_1", "call_2"]
    assert back[1].content is None and back[3].tool_call_id == "call_2" and back[3].text() == "rain"
    assert back[4].text() == "Checking once more." and [c.id for c in back[4].tool_calls or []] == ["call_3"]
