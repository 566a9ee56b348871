"""Stored conversations and their items. Blocking calls: the serving layer runs them on worker threads.

Each conversation belongs to an owner (the API key that made it, as the proxy tells); another owner sees a 404, as
if it did not exist. Items are numbered by position within their conversation; an append locks the conversation
row, so two concurrent appends both land, one after the other, each contiguous.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from chat_service.conversations.store.database import conversation_items, conversations

Order = Literal["asc", "desc"]
_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


class UnknownCursor(Exception):
    """`after` names no item of this listing."""


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    created_at: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    has_more: bool


def _record(row: Any) -> ConversationRecord:
    return ConversationRecord(row.id, row.created_at, json.loads(row.metadata))


def _item(row: Any) -> dict[str, Any]:
    return {"id": row.id, **json.loads(row.body)}


class ConversationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, owner: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> ConversationRecord:
        stamp = int(time.time())
        record = ConversationRecord(f"conv_{uuid.uuid4().hex}", stamp, metadata)
        with self.engine.begin() as conn:
            conn.execute(
                insert(conversations).values(
                    id=record.id, owner=owner, created_at=stamp, updated_at=stamp, metadata=json.dumps(metadata)
                )
            )
            self._insert_items(conn, record.id, 0, items, stamp)
        return record

    def get(self, owner: str, conversation_id: str) -> ConversationRecord | None:
        with self.engine.begin() as conn:
            row = self._row(conn, owner, conversation_id)
        return _record(row) if row else None

    def page(self, owner: str, after: str | None, limit: int, order: Order) -> Page:
        table = conversations
        with self.engine.begin() as conn:
            query = select(table).where(table.c.owner == owner)
            if after is not None:
                cursor = conn.execute(select(table.c.seq).where(table.c.owner == owner, table.c.id == after)).scalar()
                if cursor is None:
                    raise UnknownCursor(after)
                query = query.where(table.c.seq > cursor if order == "asc" else table.c.seq < cursor)
            query = query.order_by(table.c.seq.asc() if order == "asc" else table.c.seq.desc()).limit(limit + 1)
            rows = conn.execute(query).all()
        return Page([_record(r) for r in rows[:limit]], len(rows) > limit)

    def update_metadata(self, owner: str, conversation_id: str, metadata: dict[str, str]) -> ConversationRecord | None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(conversations)
                .where(conversations.c.owner == owner, conversations.c.id == conversation_id)
                .values(metadata=json.dumps(metadata), updated_at=int(time.time()))
            )
            row = self._row(conn, owner, conversation_id) if done.rowcount else None
        return _record(row) if row else None

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self.engine.begin() as conn:
            # Items first: SQLite enforces ON DELETE CASCADE only with foreign keys on, which a shared file may lack.
            if self._row(conn, owner, conversation_id) is None:
                return False
            conn.execute(delete(conversation_items).where(conversation_items.c.conversation_id == conversation_id))
            conn.execute(delete(conversations).where(conversations.c.id == conversation_id))
        return True

    def append(self, owner: str, conversation_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The stored items (with their ids), or None when the conversation does not exist (for this owner)."""
        stamp = int(time.time())
        with self.engine.begin() as conn:
            if self._row(conn, owner, conversation_id, lock=True) is None:
                return None
            last = conn.execute(
                select(func.max(conversation_items.c.position)).where(
                    conversation_items.c.conversation_id == conversation_id
                )
            ).scalar()
            stored = self._insert_items(conn, conversation_id, (last or 0), items, stamp)
            conn.execute(update(conversations).where(conversations.c.id == conversation_id).values(updated_at=stamp))
        return stored

    def items(
        self, owner: str, conversation_id: str, after: str | None = None, limit: int | None = None, order: Order = "asc"
    ) -> Page | None:
        """A page of items, or every item in order when no limit is given; None for an unknown conversation."""
        table = conversation_items
        with self.engine.begin() as conn:
            if self._row(conn, owner, conversation_id) is None:
                return None
            query = select(table).where(table.c.conversation_id == conversation_id)
            if after is not None:
                cursor = conn.execute(
                    select(table.c.position).where(table.c.conversation_id == conversation_id, table.c.id == after)
                ).scalar()
                if cursor is None:
                    raise UnknownCursor(after)
                query = query.where(table.c.position > cursor if order == "asc" else table.c.position < cursor)
            query = query.order_by(table.c.position.asc() if order == "asc" else table.c.position.desc())
            if limit is not None:
                query = query.limit(limit + 1)
            rows = conn.execute(query).all()
        if limit is None:
            return Page([_item(r) for r in rows], False)
        return Page([_item(r) for r in rows[:limit]], len(rows) > limit)

    def item(self, owner: str, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        with self.engine.begin() as conn:
            if self._row(conn, owner, conversation_id) is None:
                return None
            row = conn.execute(
                select(conversation_items).where(
                    conversation_items.c.conversation_id == conversation_id, conversation_items.c.id == item_id
                )
            ).first()
        return _item(row) if row else None

    def delete_item(self, owner: str, conversation_id: str, item_id: str) -> bool:
        with self.engine.begin() as conn:
            if self._row(conn, owner, conversation_id, lock=True) is None:
                return False
            done = conn.execute(
                delete(conversation_items).where(
                    conversation_items.c.conversation_id == conversation_id, conversation_items.c.id == item_id
                )
            )
        return bool(done.rowcount)

    @staticmethod
    def _row(conn: Connection, owner: str, conversation_id: str, lock: bool = False) -> Any:
        query = select(conversations).where(conversations.c.owner == owner, conversations.c.id == conversation_id)
        return conn.execute(query.with_for_update() if lock else query).first()

    @staticmethod
    def _insert_items(
        conn: Connection, conversation_id: str, last: int, items: list[dict[str, Any]], stamp: int
    ) -> list[dict[str, Any]]:
        stored = [{"id": f"{_ITEM_PREFIX[item['type']]}_{uuid.uuid4().hex}", **item} for item in items]
        if stored:
            conn.execute(
                insert(conversation_items),
                [
                    {
                        "id": item["id"],
                        "conversation_id": conversation_id,
                        "position": last + offset,
                        "created_at": stamp,
                        "body": json.dumps({k: v for k, v in item.items() if k != "id"}),
                    }
                    for offset, item in enumerate(stored, start=1)
                ],
            )
        return stored
