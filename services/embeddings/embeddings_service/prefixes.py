"""input_type prefixes and instructions: what text the model actually sees in front of the client's text.

Retrieval models trained with prefixes (Ruri, E5, BGE, Nomic ...) embed queries and documents well only when the
text carries the prefix the model was trained with; the table is per model, from config.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortserve_common.protocol.embeddings import INPUT_TYPES, InputType

# Ruri v3 (cl-nagoya/ruri-v3-*): the prefixes from its model card; "sts" is deliberately empty.
RURI_V3_PREFIXES: dict[InputType, str] = {
    "query": "検索クエリ: ",
    "document": "検索文書: ",
    "classification": "トピック: ",
    "clustering": "トピック: ",
    "sts": "",
}

# multilingual-e5 (intfloat/multilingual-e5-*): "query: " and "passage: " for retrieval; its model card asks for
# "query: " on symmetric tasks and on embeddings used as features (classification, clustering).
E5_PREFIXES: dict[InputType, str] = {
    "query": "query: ",
    "document": "passage: ",
    "classification": "query: ",
    "clustering": "query: ",
    "sts": "query: ",
}

PREFIX_PRESETS: dict[str, dict[InputType, str]] = {"ruri-v3": RURI_V3_PREFIXES, "e5": E5_PREFIXES}


def folder_prefixes(value: object) -> dict[InputType, str]:
    """The prefix table a model folder names in its ortserve_model.json (a preset's name or a table); ValueError
    says what is wrong with it."""
    if value is None:
        return {}
    if isinstance(value, str):
        if value not in PREFIX_PRESETS:
            raise ValueError(f"unknown prefix preset {value!r}; built-in: {', '.join(sorted(PREFIX_PRESETS))}")
        return dict(PREFIX_PRESETS[value])
    if isinstance(value, dict) and all(k in INPUT_TYPES and isinstance(v, str) for k, v in value.items()):
        return {k: v for k, v in value.items() if k in INPUT_TYPES}
    raise ValueError(f"prefixes must be a preset name or an object of {', '.join(INPUT_TYPES)} -> text")


# E5-instruct / GTE-Qwen convention, the most common one for instruction-tuned embedders.
DEFAULT_INSTRUCTION_TEMPLATE = "Instruct: {instruction}\nQuery: "


@dataclass(frozen=True)
class PrefixPolicy:
    """A model's prefix table and instruction template."""

    table: dict[InputType, str]
    instruction_template: str = DEFAULT_INSTRUCTION_TEMPLATE

    def prefix_for(self, input_type: InputType | None, instruction: str | None) -> str:
        """The whole prefix, instruction first; empty when nothing applies."""
        return self._instruction_part(instruction) + (self.table.get(input_type, "") if input_type else "")

    def apply(self, text: str, input_type: InputType | None, instruction: str | None) -> str:
        """Prefix `text`, skipping any part the text already starts with, so a prefix is never added twice."""
        type_prefix = self.table.get(input_type, "") if input_type else ""
        if type_prefix and not text.startswith(type_prefix):
            text = type_prefix + text
        instruction_part = self._instruction_part(instruction)
        if instruction_part and not text.startswith(instruction_part):
            text = instruction_part + text
        return text

    def _instruction_part(self, instruction: str | None) -> str:
        if not instruction:
            return ""
        return self.instruction_template.replace("{instruction}", instruction)
