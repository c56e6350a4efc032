"""SQLite, the source of truth for all state, through sqlite-utils.

Owns the connection and its transactions (connection.py), the schema as migrations
(migrations.py), the typed rows it returns (rows.py) and one module of queries per concept:
companions and personas, presets, chats, messages, groups, lorebooks, memories, documents. `Store`
joins them over one connection. The Chroma index is derived from the ``memories`` table and can
always be rebuilt from it.

May import: the foundations (errors, events) and sqlite-utils. Nothing above it: the store knows
no services, no model, no memory index.
"""

from __future__ import annotations

from companion.store.chats import ChatQueries
from companion.store.companions import CompanionQueries
from companion.store.documents import DocumentQueries
from companion.store.groups import GroupQueries
from companion.store.lorebooks import LorebookQueries
from companion.store.memories import MemoryQueries
from companion.store.messages import MessageQueries
from companion.store.presets import PresetQueries


class Store(CompanionQueries, PresetQueries, ChatQueries, MessageQueries, GroupQueries, LorebookQueries, MemoryQueries,
            DocumentQueries):
    """All queries over one SQLite file. Thread-safe: one connection behind one lock."""
