"""Stored prompt templates, by name. Blocking calls: the serving layer runs them on worker threads."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from chat_service.conversations.store.database import prompt_templates


@dataclass(frozen=True)
class TemplateRecord:
    name: str
    description: str | None
    system_prompt: str
    parameters: dict[str, Any]
    created_at: int
    updated_at: int


class TemplateExists(Exception):
    """A template of that name is already stored."""


def _record(row: Any) -> TemplateRecord:
    return TemplateRecord(
        row.name, row.description, row.system_prompt, json.loads(row.parameters), row.created_at, row.updated_at
    )


class PromptTemplateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, name: str, description: str | None, system_prompt: str, parameters: dict[str, Any]
    ) -> TemplateRecord:
        stamp = int(time.time())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(prompt_templates).values(
                        name=name,
                        description=description,
                        system_prompt=system_prompt,
                        parameters=json.dumps(parameters),
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
        except IntegrityError:
            raise TemplateExists(name) from None
        return TemplateRecord(name, description, system_prompt, parameters, stamp, stamp)

    def replace(
        self, name: str, description: str | None, system_prompt: str, parameters: dict[str, Any]
    ) -> TemplateRecord | None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(prompt_templates)
                .where(prompt_templates.c.name == name)
                .values(
                    description=description,
                    system_prompt=system_prompt,
                    parameters=json.dumps(parameters),
                    updated_at=int(time.time()),
                )
            )
            row = conn.execute(select(prompt_templates).where(prompt_templates.c.name == name)).first()
        return _record(row) if done.rowcount and row else None

    def get(self, name: str) -> TemplateRecord | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(prompt_templates).where(prompt_templates.c.name == name)).first()
        return _record(row) if row else None

    def all(self) -> list[TemplateRecord]:
        with self.engine.begin() as conn:
            rows = conn.execute(select(prompt_templates).order_by(prompt_templates.c.name)).all()
        return [_record(r) for r in rows]

    def delete(self, name: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(delete(prompt_templates).where(prompt_templates.c.name == name))
        return bool(done.rowcount)
