"""The chat service's own state (conversations, stored responses, prompt templates): SQLite in a data folder, or
PostgreSQL.

SQLAlchemy Core keeps one code path for both. Every transaction on SQLite starts with BEGIN IMMEDIATE, so that two
processes appending to one conversation take turns instead of one failing on a stale snapshot; on PostgreSQL the
conversation's row is locked (SELECT ... FOR UPDATE) for the same effect.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

logger = logging.getLogger(__name__)

SQLITE_FILE = "chat.sqlite3"
SQLITE_BUSY_TIMEOUT_S = 30.0

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    # seq orders the listing: ids are random, and created_at has one-second resolution.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("metadata", Text, nullable=False),
)
Index("conversations_owner_seq", conversations.c.owner, conversations.c.seq)

conversation_items = Table(
    "conversation_items",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the item's JSON, without its id
    UniqueConstraint("conversation_id", "position", name="conversation_items_position"),
)

responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("previous_response_id", String(64), nullable=True),
    Column("body", Text, nullable=False),  # the response object's JSON, as the client got it
    Column("input_items", Text, nullable=False),  # this request's input items, with their ids
    # Everything the next turn of a chain sees before its own input: the earlier turns' items, this input, this
    # output (instructions excepted: OpenAI does not carry them over).
    Column("context_items", Text, nullable=False),
)

prompt_templates = Table(
    "prompt_templates",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=True),
    Column("system_prompt", Text, nullable=False),
    Column("parameters", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)


def database_url(data_dir: Path, url: str | None) -> str:
    """PostgreSQL when a URL is configured (psycopg 3 is the driver), else SQLite in the data folder."""
    if url:
        parsed = make_url(url)
        if parsed.drivername in ("postgres", "postgresql"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / SQLITE_FILE).resolve()}"


def open_database(data_dir: Path, url: str | None) -> Engine:
    engine = create_engine(database_url(data_dir, url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    _create_tables(engine)
    logger.info("chat state in %s", engine.url.render_as_string(hide_password=True))
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    # pysqlite's own BEGIN is deferred and comes late; take over transaction control (SQLAlchemy's documented recipe).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers do not wait for the writer
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_tables(engine: Engine) -> None:
    # Replicas that start together race to create the tables; the loser finds them made on its second look.
    try:
        metadata.create_all(engine)
    except DBAPIError as exc:
        logger.info("creating tables raced another instance (%s); checking again", type(exc).__name__)
        metadata.create_all(engine)
