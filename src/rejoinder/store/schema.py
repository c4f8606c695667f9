"""The latest schema. Every row carries its ``owner`` (the API principal that created it).

Items are stored as the exact JSON objects the API returns, so a round trip is lossless whatever
the item type. A response row's ``body`` is the Response object without ``output``: its output
lives in ``response_items`` (kind ``output``) and is read back from there. While a response runs,
its lease renewals keep its partial output as kind ``draft`` (``services/leases.py``), which
becomes its output if the run dies before it ends.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import JSON

metadata = MetaData()

AutoId = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

responses = Table(
    "responses",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(80), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("model", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("previous_response_id", String(80)),
    Column("conversation_id", String(80)),
    Column("background", Boolean, nullable=False, default=False),
    Column("body", Text, nullable=False),
    Column("request", Text),
    Column("lease_owner", String(80)),
    Column("lease_expires_at", Float),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    # A queued background job's preparation (its MCP tool listings), so the replica that claims it
    # runs what was validated when it was accepted, without listing again.
    Column("prepared", Text),
)
Index("ix_responses_owner_seq", responses.c.owner, responses.c.seq)

# A response is active while queued or in progress. Only active rows have an entry in this partial
# index, which the background queue and lease recovery search: a turn adds its entry when it starts
# and drops it when it ends, so the finished rows, nearly all of the table, have none. The queries that
# search it carry ``ACTIVE`` word for word, constants included: SQLite uses a partial index only
# for a query that repeats its condition (a bound parameter does not count).
ACTIVE_STATUSES = ("queued", "in_progress")
ACTIVE = responses.c.status.in_([literal_column(f"'{status}'") for status in ACTIVE_STATUSES])
Index("ix_responses_active", responses.c.status, sqlite_where=ACTIVE, postgresql_where=ACTIVE)

response_items = Table(
    "response_items",
    metadata,
    Column("response_id", String(80), primary_key=True),
    Column("kind", String(6), primary_key=True),  # "input" | "output" | "draft"
    Column("position", Integer, primary_key=True),
    Column("item_id", String(120), nullable=False),
    Column("data", Text, nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(80), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("next_position", Integer, nullable=False, default=0),
    Column("locked_by", String(80)),
    Column("locked_until", Float),
)

Index("ix_conversations_owner_seq", conversations.c.owner, conversations.c.seq)  # listing one principal's

conversation_items = Table(
    "conversation_items",
    metadata,
    Column("conversation_id", String(80), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("item_id", String(120), nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("conversation_id", "item_id", name="uq_conversation_item"),
)

response_events = Table(
    "response_events",
    metadata,
    Column("response_id", String(80), primary_key=True),
    Column("sequence_number", Integer, primary_key=True),
    Column("data", Text, nullable=False),
)

# -- Files and vector stores (version 5) ------------------------------------------------------------
# A file's bytes live in ``file_parts`` (``files.part_bytes`` each), so every replica reads every
# file and an upload never holds more than one part in memory. A row is ``complete`` once its last
# part is written; until then no route shows it (an upload cut short is deleted, or swept later).
files = Table(
    "files",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(80), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("filename", Text, nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("complete", Boolean, nullable=False, default=False),
    Column("expires_at", Float),
)
Index("ix_files_owner_seq", files.c.owner, files.c.seq)

file_parts = Table(
    "file_parts",
    metadata,
    Column("file_id", String(80), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

Attributes = JSON().with_variant(JSONB(), "postgresql")

vector_stores = Table(
    "vector_stores",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(80), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("description", Text),
    Column("metadata", Text, nullable=False),
    Column("expires_after_days", Integer),
    Column("last_active_at", Float, nullable=False),
    Column("embedding_model", String(200), nullable=False),
)
Index("ix_vector_stores_owner_seq", vector_stores.c.owner, vector_stores.c.seq)

# A file attached to a vector store, and the ingestion queue: rows ``in_progress`` are jobs, claimed
# by a replica with a lease as responses are (``lease_owner`` / ``lease_expires_at``).
vector_store_files = Table(
    "vector_store_files",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("vector_store_id", String(80), nullable=False),
    Column("file_id", String(80), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("last_error", Text),
    Column("attributes", Attributes),
    Column("chunking_strategy", Text, nullable=False),
    Column("usage_bytes", BigInteger, nullable=False, default=0),
    Column("batch_id", String(80)),
    Column("lease_owner", String(80)),
    Column("lease_expires_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    UniqueConstraint("vector_store_id", "file_id", name="uq_vector_store_file"),
)
Index("ix_vector_store_files_store_seq", vector_store_files.c.vector_store_id, vector_store_files.c.seq)
Index("ix_vector_store_files_file", vector_store_files.c.file_id)
Index("ix_vector_store_files_batch", vector_store_files.c.batch_id)
INGESTING = vector_store_files.c.status == literal_column("'in_progress'")
Index("ix_vector_store_files_queue", vector_store_files.c.status,
      sqlite_where=INGESTING, postgresql_where=INGESTING)

vector_store_file_batches = Table(
    "vector_store_file_batches",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(80), nullable=False, unique=True),
    Column("vector_store_id", String(80), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("cancelled", Boolean, nullable=False, default=False),
)

VERSION_5_TABLES = (files, file_parts, vector_stores, vector_store_files, vector_store_file_batches)

LATEST_VERSION = 5
