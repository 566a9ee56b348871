"""Stored responses (/v1/responses with store=true). Blocking calls: the serving layer runs them on worker threads.

Each response belongs to an owner (the API key that made it, as the proxy tells); another owner sees a 404, as if it
did not exist. A response is written once and never changed, so no locking is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from chat_service.conversations.store.database import responses


@dataclass(frozen=True)
class ResponseRecord:
    id: str
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    context_items: list[dict[str, Any]]


class ResponseStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, owner: str, record: ResponseRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(responses).values(
                    id=record.id,
                    owner=owner,
                    created_at=record.body["created_at"],
                    previous_response_id=record.body.get("previous_response_id"),
                    body=json.dumps(record.body),
                    input_items=json.dumps(record.input_items),
                    context_items=json.dumps(record.context_items),
                )
            )

    def get(self, owner: str, response_id: str) -> ResponseRecord | None:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(responses).where(responses.c.owner == owner, responses.c.id == response_id)
            ).first()
        if row is None:
            return None
        return ResponseRecord(row.id, json.loads(row.body), json.loads(row.input_items), json.loads(row.context_items))

    def delete(self, owner: str, response_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(delete(responses).where(responses.c.owner == owner, responses.c.id == response_id))
        return bool(done.rowcount)
