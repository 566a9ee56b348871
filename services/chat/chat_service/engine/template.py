"""Prompt rendering with the model's own chat template, falling back to Phi-3's when the folder has none."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def find_template_override(model_path: Path) -> str | None:
    """None when ONNX Runtime GenAI will find the folder's own template file; else the template text to pass it."""
    if (model_path / "chat_template.jinja").is_file():
        return None
    config_file = model_path / "tokenizer_config.json"
    if config_file.is_file():
        try:
            template = json.loads(config_file.read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError):
            template = None
        if isinstance(template, str) and template.strip():
            return template
    logger.info("no chat template in %s; using the Phi-3 template", model_path)
    return PHI3_TEMPLATE


def messages_json(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, ensure_ascii=False)


def template_renders_tools(model_path: Path, override: str | None) -> bool:
    """Whether the chat template itself lays out `tools` (SmolLM2's and Phi-3's do not: the server then describes
    the tools in the system prompt itself)."""
    source = override
    if source is None:
        try:
            source = (model_path / "chat_template.jinja").read_text(encoding="utf-8")
        except OSError:
            return False
    return "tools" in source
