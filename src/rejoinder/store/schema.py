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
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
)

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

LATEST_VERSION = 4
