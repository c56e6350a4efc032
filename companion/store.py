"""SQLite through sqlite-utils: the schema (as migrations) and every query.

SQLite is the source of truth for all state: companions, user personas, chats, messages,
long-term memory rows and dialogue-tuning examples. The Chroma index is derived from the
``memories`` table and can always be rebuilt from it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, TypedDict

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import full_disk_refused
from .events import Publish, no_events

DEFAULT_COMPANION = {
    "name": "Assistant",
    "persona": (
        "{{char}} is a friendly, curious and warm companion who enjoys talking with {{user}}, "
        "remembers what {{user}} tells them and answers honestly."
    ),
    "example_dialogue": (
        "{{user}}: Hi! How are you?\n{{char}}: Hi {{user}}! I'm doing well, thanks for asking. "
        "How was your day?"
    ),
    "first_message": "Hello {{user}}, I'm {{char}}. What would you like to talk about?",
    "long_term_mem": 2,
    "short_term_mem": 10,
    "roleplay": 1,
    "dialogue_tuning": 0,
}
DEFAULT_USER = {"name": "User", "persona": "{{user}} is a human who talks with {{char}}."}

COMPANION_FIELDS = (
    "name", "persona", "personality", "scenario", "example_dialogue", "first_message",
    "long_term_mem", "short_term_mem", "roleplay", "dialogue_tuning", "avatar", "card", "generation",
    "card_lorebook_id", "active_chat_id", "initiative", "preset_id",
)
JSON_FIELDS = ("card", "generation", "initiative")


def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def utc_iso(moment: str | datetime | None) -> str:
    """A moment as stored: UTC, ISO 8601 to the second (so that stored times sort as text);
    now when None. A naive time is taken as UTC."""
    if moment is None:
        return now_iso()
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def conditions(*pairs: tuple[str, Any]) -> tuple[str, list]:
    """A where clause of the conditions whose value is given (not None, 0 or empty), and their values."""
    used = [(condition, value) for condition, value in pairs if value]
    return " and ".join(c for c, _ in used) or "1", [v for _, v in used]


# --- migrations -------------------------------------------------------------------------

migrations = Migrations("companion")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: ids of deleted messages and memories are never handed out again, so a
    # client's id and a Chroma entry's id always mean the same row.
    schema = """
    create table companions (
        id integer primary key autoincrement,
        name text not null,
        persona text not null default '',
        personality text not null default '',
        scenario text not null default '',
        example_dialogue text not null default '',
        first_message text not null default '',
        long_term_mem integer not null default 2,
        short_term_mem integer not null default 10,
        roleplay integer not null default 1,
        dialogue_tuning integer not null default 0,
        avatar text,
        card text not null default '{}',
        active_chat_id integer,
        created_at text not null,
        updated_at text not null
    );
    create table users (
        id integer primary key autoincrement,
        name text not null,
        persona text not null default '',
        created_at text not null,
        updated_at text not null
    );
    create table chats (
        id integer primary key autoincrement,
        companion_id integer not null references companions(id) on delete cascade,
        title text not null default '',
        created_at text not null
    );
    create table messages (
        id integer primary key autoincrement,
        chat_id integer not null references chats(id) on delete cascade,
        ai integer not null,
        text text not null,
        greeting integer not null default 0,
        created_at text not null
    );
    create index messages_chat on messages(chat_id, id);
    create table memories (
        id integer primary key autoincrement,
        companion_id integer not null references companions(id) on delete cascade,
        text text not null,
        source text not null,
        user_message_id integer,
        reply_message_id integer,
        created_at text not null
    );
    create index memories_companion on memories(companion_id);
    create index memories_user_message on memories(user_message_id);
    create index memories_reply_message on memories(reply_message_id);
    create table tuning_examples (
        id integer primary key autoincrement,
        companion_id integer not null references companions(id) on delete cascade,
        user_text text not null,
        ai_text text not null,
        created_at text not null
    );
    create table state (
        key text primary key,
        value text
    );
    """
    for statement in schema.split(";"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m002_companion_generation(db: sqlite_utils.Database) -> None:
    # per-companion generation settings over the global defaults, as a JSON object
    db.execute("alter table companions add column generation text not null default '{}'")


@migrations()
def m003_lorebooks(db: sqlite_utils.Database) -> None:
    # a lorebook is kept as the JSON it came in (its own format), so it exports unchanged
    for statement in """
    create table lorebooks (
        id integer primary key autoincrement,
        name text not null default '',
        format text not null,
        data text not null,
        created_at text not null,
        updated_at text not null
    );
    create table companion_lorebooks (
        companion_id integer not null references companions(id) on delete cascade,
        lorebook_id integer not null references lorebooks(id) on delete cascade,
        primary key (companion_id, lorebook_id)
    );
    alter table companions add column card_lorebook_id integer
    """.split(";"):
        db.execute(statement)


@migrations()
def m004_context_and_documents(db: sqlite_utils.Database) -> None:
    # what each reply used (memories, lore), and documents split into memories
    for statement in """
    create table message_context (
        message_id integer primary key references messages(id) on delete cascade,
        memories text not null default '[]',
        lore text not null default '[]'
    );
    create table documents (
        id integer primary key autoincrement,
        companion_id integer not null references companions(id) on delete cascade,
        name text not null,
        media_type text not null,
        size integer not null,
        chunks integer not null default 0,
        created_at text not null
    );
    alter table memories add column document_id integer references documents(id) on delete cascade;
    create index memories_document on memories(document_id)
    """.split(";"):
        db.execute(statement)


@migrations()
def m005_swipes_and_search(db: sqlite_utils.Database) -> None:
    # swipes: the alternatives of a reply (SillyTavern's swipes/swipe_id); text is the chosen one.
    # messages_fts: full-text search over messages, kept in step by triggers.
    statements = [
        "alter table messages add column swipes text not null default '[]'",
        "alter table messages add column swipe_id integer not null default 0",
        "create virtual table messages_fts using fts5(text, content='messages', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2')",
        "create trigger messages_fts_insert after insert on messages begin "
        "insert into messages_fts(rowid, text) values (new.id, new.text); end",
        "create trigger messages_fts_delete after delete on messages begin "
        "insert into messages_fts(messages_fts, rowid, text) values ('delete', old.id, old.text); end",
        "create trigger messages_fts_update after update of text on messages begin "
        "insert into messages_fts(messages_fts, rowid, text) values ('delete', old.id, old.text); "
        "insert into messages_fts(rowid, text) values (new.id, new.text); end",
        "insert into messages_fts(rowid, text) select id, text from messages",
    ]
    for statement in statements:
        db.execute(statement)


@migrations()
def m006_memory_words(db: sqlite_utils.Database) -> None:
    # memories_fts: the words of each memory for lexical recall (bm25), kept in step by triggers;
    # the porter stemmer lets "lives" find "live". memories' times become UTC so they sort as text.
    statements = [
        "create virtual table memories_fts using fts5(text, content='memories', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')",
        "create trigger memories_fts_insert after insert on memories begin "
        "insert into memories_fts(rowid, text) values (new.id, new.text); end",
        "create trigger memories_fts_delete after delete on memories begin "
        "insert into memories_fts(memories_fts, rowid, text) values ('delete', old.id, old.text); end",
        "create trigger memories_fts_update after update of text on memories begin "
        "insert into memories_fts(memories_fts, rowid, text) values ('delete', old.id, old.text); "
        "insert into memories_fts(rowid, text) values (new.id, new.text); end",
        "insert into memories_fts(rowid, text) select id, text from memories",
        "create index memories_companion_created on memories(companion_id, created_at)",
    ]
    for statement in statements:
        db.execute(statement)
    for row in list(db.query("select id, created_at from memories where created_at not like '%+00:00'")):
        try:
            db.execute("update memories set created_at = ? where id = ?", [utc_iso(row["created_at"]), row["id"]])
        except ValueError:
            pass


@migrations()
def m007_summaries(db: sqlite_utils.Database) -> None:
    # a summary is a memory of a range of a chat's messages; a chat remembers where its prompt's
    # history window starts, how far it has been summarized, and its optional "story so far".
    # Existing chats count as summarized: only blocks that leave the window from now on are.
    statements = [
        "alter table memories add column chat_id integer references chats(id) on delete cascade",
        "alter table memories add column first_message_id integer",
        "alter table memories add column last_message_id integer",
        "alter table chats add column window_start_id integer",
        "alter table chats add column summarized_through integer not null default 0",
        "alter table chats add column story_so_far integer not null default 0",
        "alter table chats add column story text not null default ''",
        "update chats set summarized_through = coalesce((select max(id) from messages where chat_id = chats.id), 0)",
        "create index memories_chat on memories(chat_id)",
    ]
    for statement in statements:
        db.execute(statement)


@migrations()
def m008_speakers_and_members(db: sqlite_utils.Database) -> None:
    # a message has a speaker: a companion (ai) or a user persona; a chat has member companions
    # in order (one for every chat so far: its companion). Group chats stand on these.
    statements = [
        "alter table messages add column companion_id integer references companions(id) on delete set null",
        "alter table messages add column user_id integer references users(id) on delete set null",
        "update messages set companion_id = (select companion_id from chats where chats.id = messages.chat_id) "
        "where ai = 1",
        "update messages set user_id = coalesce((select u.id from state s join users u "
        "on u.id = cast(s.value as integer) where s.key = 'active_user_id'), (select min(id) from users)) "
        "where ai = 0",
        "create table chat_members (chat_id integer not null references chats(id) on delete cascade, "
        "companion_id integer not null references companions(id) on delete cascade, "
        "position integer not null, primary key (chat_id, companion_id))",
        "insert into chat_members (chat_id, companion_id, position) select id, companion_id, 0 from chats",
        "create index chat_members_companion on chat_members(companion_id)",
    ]
    for statement in statements:
        db.execute(statement)


@migrations()
def m009_initiative(db: sqlite_utils.Database) -> None:
    # a companion may write first (its own settings over [initiative], off unless enabled);
    # a message it wrote so is marked initiated
    db.execute("alter table companions add column initiative text not null default '{}'")
    db.execute("alter table messages add column initiated integer not null default 0")


@migrations()
def m010_groups(db: sqlite_utils.Database) -> None:
    # a group: a named set of companions (in order, some muted) with its own chats; a group chat
    # is a chat whose members are the group's (its companion_id is the first member's)
    for statement in [
        "create table companion_groups (id integer primary key autoincrement, name text not null, "
        "strategy text not null default 'natural', active_chat_id integer, "
        "created_at text not null, updated_at text not null)",
        "create table group_members (group_id integer not null references companion_groups(id) on delete cascade, "
        "companion_id integer not null references companions(id) on delete cascade, position integer not null, "
        "muted integer not null default 0, talkativeness real, primary key (group_id, companion_id))",
        "create index group_members_companion on group_members(companion_id)",
        "alter table chats add column group_id integer references companion_groups(id) on delete cascade",
        "create index chats_group on chats(group_id)",
    ]:
        db.execute(statement)


BUILTIN_PRESETS = {   # the presets to start from (settings a companion's own win over)
    "precise": {"temperature": 0.3, "top_p": 0.9, "top_k": 20, "min_p": 0.1, "repeat_penalty": 1.1},
    "balanced": {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1},
    "creative": {"temperature": 1.1, "top_p": 0.98, "top_k": 0, "min_p": 0.05, "repeat_penalty": 1.05},
}


@migrations()
def m011_presets_and_persona_avatars(db: sqlite_utils.Database) -> None:
    # named generation presets (SillyTavern keys we do not use kept in `extra` for export; the
    # built-in ones cannot change); a companion may use one; personas get avatars
    now = now_iso()
    statements = [
        "create table presets (id integer primary key autoincrement, name text not null, "
        "settings text not null default '{}', extra text not null default '{}', "
        "builtin integer not null default 0, created_at text not null, updated_at text not null)",
        "alter table companions add column preset_id integer references presets(id) on delete set null",
        "alter table users add column avatar text",
    ]
    for statement in statements:
        db.execute(statement)
    for name, values in BUILTIN_PRESETS.items():
        db.execute("insert into presets (name, settings, builtin, created_at, updated_at) values (?, ?, 1, ?, ?)",
                   [name, json.dumps(values), now, now])


@migrations()
def m012_group_preset(db: sqlite_utils.Database) -> None:
    # a group may use a generation preset for its members' replies
    db.execute("alter table companion_groups add column preset_id integer references presets(id) on delete set null")


# --- rows as the store returns them -------------------------------------------------------

class MessageRow(TypedDict):
    """A stored message: its chosen text, its swipes (alternatives, decoded) and its speaker."""
    id: int
    chat_id: int
    ai: bool
    text: str
    greeting: bool
    created_at: str
    swipes: list[str]          # empty when the message has no alternatives
    swipe_id: int
    companion_id: int | None   # the companion who said it (ai)
    user_id: int | None        # the user persona who said it (not ai)
    initiated: bool            # the companion wrote it first, not in reply


class ChatRow(TypedDict):
    """A stored chat, with its member companions in order (the first is its companion)."""
    id: int
    companion_id: int
    title: str
    created_at: str
    window_start_id: int | None
    summarized_through: int
    story_so_far: bool
    story: str
    members: list[int]
    group_id: int | None       # a group chat's group


class CompanionRow(TypedDict):
    """A stored companion: its card's columns, settings (booleans as bool), card and generation decoded."""
    id: int
    name: str
    persona: str
    personality: str
    scenario: str
    example_dialogue: str
    first_message: str
    long_term_mem: int
    short_term_mem: int
    roleplay: bool
    dialogue_tuning: bool
    avatar: str | None
    card: dict
    generation: dict
    card_lorebook_id: int | None
    active_chat_id: int | None
    initiative: dict           # writing first: {"enabled": bool, ...[initiative] settings of its own}
    preset_id: int | None      # the generation preset it uses
    created_at: str
    updated_at: str


def companion_row(row: dict) -> CompanionRow:
    """A companions row decoded: booleans as bool, card and generation as dicts."""
    for key in JSON_FIELDS:
        row[key] = json.loads(row[key] or "{}")
    for key in ("roleplay", "dialogue_tuning"):
        row[key] = bool(row[key])
    return row  # type: ignore[return-value]


class PresetRow(TypedDict):
    """A stored generation preset: its settings (some of GenerationSettings') and the SillyTavern keys kept."""
    id: int
    name: str
    settings: dict
    extra: dict                # a SillyTavern preset's keys we do not use, for export
    builtin: bool
    created_at: str
    updated_at: str


def preset_row(row: dict) -> PresetRow:
    """A presets row decoded."""
    row["settings"] = json.loads(row["settings"] or "{}")
    row["extra"] = json.loads(row["extra"] or "{}")
    row["builtin"] = bool(row["builtin"])
    return row  # type: ignore[return-value]


def message_row(row: dict) -> MessageRow:
    """A messages row decoded: booleans as bool, swipes as a list."""
    row["ai"] = bool(row["ai"])
    row["greeting"] = bool(row["greeting"])
    row["initiated"] = bool(row["initiated"])
    row["swipes"] = json.loads(row["swipes"] or "[]")
    return row  # type: ignore[return-value]


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


# GET /api/companions' sorts: what each orders by (never-chatted companions last by last chat)
COMPANION_ORDER = {"name": "casefold(c.name) {order}, c.id {order}", "created": "c.created_at {order}, c.id {order}",
                   "modified": "c.updated_at {order}, c.id {order}",
                   "last_chat": "last_chat_at is null, last_chat_at {order}, c.id {order}"}


# --- the store --------------------------------------------------------------------------


class Store:
    """All queries over one SQLite file. Thread-safe: one connection behind one lock."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """Open (creating, migrating and seeding) the database; read_only opens an existing one
        as it is, changing nothing (FileNotFoundError when there is none)."""
        self.path = Path(path)
        if read_only:
            if not self.path.is_file():
                raise FileNotFoundError(f"no database at {self.path}")
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        conn.create_function("casefold", 1, _casefold, deterministic=True)   # case-insensitive search, any script
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._depth = 0
        self.on_change: Publish = no_events   # told of each committed change (the live events)
        self._pending: list[tuple[str, dict]] = []
        self.db.execute("PRAGMA busy_timeout=5000")
        if read_only:
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        migrate(self.db)
        self._seed()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One atomic write: everything inside commits together or not at all."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self.db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                with full_disk_refused():
                    yield self.db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._rollback()
                raise
            self._depth -= 1
            if outer:
                try:
                    with full_disk_refused():
                        self.db.execute("COMMIT")
                except BaseException:
                    self._rollback()     # a COMMIT that failed (a full disk) may leave the transaction open
                    raise
                pending, self._pending = self._pending, []
                for kind, data in pending:
                    self.on_change(kind, data)

    def _rollback(self) -> None:
        """End the transaction, unless SQLite ended it already (it may, on SQLITE_FULL)."""
        self._pending.clear()
        if self.db.conn.in_transaction:
            self.db.execute("ROLLBACK")

    def _changed(self, kind: str, data: dict) -> None:
        """Tell on_change of a change once its transaction commits (at once outside one)."""
        with self._lock:
            if self._depth:
                self._pending.append((kind, data))
                return
        self.on_change(kind, data)

    def _insert(self, table: str, row: dict) -> int:
        """Insert one row with plain SQL (sqlite-utils' helpers commit on their own)."""
        columns = ", ".join(f"[{c}]" for c in row)
        marks = ", ".join("?" * len(row))
        with self.transaction() as db:
            cursor = db.execute(f"insert into [{table}] ({columns}) values ({marks})", list(row.values()))
            return int(cursor.lastrowid)

    def _update(self, table: str, row_id: int | str, values: dict, pk: str = "id") -> None:
        assignments = ", ".join(f"[{c}] = ?" for c in values)
        with self.transaction() as db:
            db.execute(f"update [{table}] set {assignments} where [{pk}] = ?", [*values.values(), row_id])

    def _query(self, sql: str, params: Any = ()) -> list[dict]:
        with self._lock:
            return list(self.db.query(sql, params))

    def _by_ids(self, select: str, ids: list[int]) -> list[dict]:
        """select ... where id in ids, in chunks that stay under SQLite's variable limit."""
        out: list[dict] = []
        for start in range(0, len(ids), 900):
            part = list(ids[start:start + 900])
            out += self._query(f"{select} where id in ({','.join('?' * len(part))})", part)
        return out

    def _one(self, sql: str, params: Any = ()) -> dict | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    # seeding and active ids --------------------------------------------------------------

    def _seed(self) -> None:
        with self.transaction() as db:
            if db["companions"].count == 0:
                companion_id = self.create_companion(DEFAULT_COMPANION)
                self.set_state("active_companion_id", companion_id)
            if db["users"].count == 0:
                now = now_iso()
                user_id = self._insert("users", {**DEFAULT_USER, "created_at": now, "updated_at": now})
                self.set_state("active_user_id", user_id)

    def get_state(self, key: str) -> str | None:
        row = self._one("select value from state where key = ?", [key])
        return row["value"] if row else None

    def set_state(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute("insert into state (key, value) values (?, ?) "
                       "on conflict(key) do update set value = excluded.value", [key, str(value)])

    def active_companion_id(self) -> int:
        """The companion the AI Companion API acts on."""
        value = self.get_state("active_companion_id")
        if value is None or self.get_companion(int(value)) is None:
            row = self._one("select id from companions order by id limit 1")
            return int(row["id"])
        return int(value)

    def active_user_id(self) -> int:
        """The user persona in use ({{user}})."""
        value = self.get_state("active_user_id")
        if value is None or self.get_user(int(value)) is None:
            row = self._one("select id from users order by id limit 1")
            return int(row["id"])
        return int(value)

    # companions and users ----------------------------------------------------------------

    def create_companion(self, fields: dict) -> int:
        """Insert a companion and open its first chat with its first message."""
        now = now_iso()
        with self.transaction():
            row = {k: v for k, v in fields.items() if k in COMPANION_FIELDS}
            for key in JSON_FIELDS:
                if key in row:
                    row[key] = json.dumps(row[key], ensure_ascii=False)
            companion_id = self._insert("companions", {**row, "created_at": now, "updated_at": now})
            self._changed("companion.created", {"id": companion_id, "name": row.get("name", "")})
            self.create_chat(companion_id)
        return int(companion_id)

    def get_companion(self, companion_id: int) -> CompanionRow | None:
        row = self._one("select * from companions where id = ?", [companion_id])
        return companion_row(row) if row else None

    def update_companion(self, companion_id: int, fields: dict) -> None:
        """Change some fields of a companion (unknown keys are a programming error)."""
        unknown = set(fields) - set(COMPANION_FIELDS)
        if unknown:
            raise KeyError(f"not companion fields: {sorted(unknown)}")
        values = dict(fields)
        for key in JSON_FIELDS:
            if key in values:
                values[key] = json.dumps(values[key], ensure_ascii=False)
        values["updated_at"] = now_iso()
        with self.transaction():
            self._update("companions", companion_id, values)
            self._changed("companion.changed", {"id": companion_id, "fields": sorted(fields)})

    def list_rows(self, table: str, limit: int, offset: int) -> list[dict]:
        """A page of companions or users, oldest first."""
        assert table in ("companions", "users")
        rows = self._query(f"select * from [{table}] order by id limit ? offset ?", [limit, offset])
        return [companion_row(row) for row in rows] if table == "companions" else rows

    def find_companions(self, q: str, tags: list[str], sort: str, order: str, limit: int,
                        offset: int) -> tuple[list[CompanionRow], int]:
        """A page of companions whose name, nickname, description or creator notes hold q (any case)
        and that have every tag (any case), with chat_count and last_chat_at (their newest message
        but greetings); sort one of COMPANION_ORDER, order 'asc' or 'desc'."""
        clause, params = conditions(
            ("instr(casefold(c.name || char(10) || coalesce(json_extract(c.card, '$.nickname'), '') || char(10) || "
             "c.persona || char(10) || coalesce(json_extract(c.card, '$.creator_notes'), '')), casefold(?)) > 0", q))
        for tag in tags:
            clause += (" and exists (select 1 from json_each(c.card, '$.tags') t "
                       "where t.type = 'text' and casefold(t.value) = casefold(?))")
            params.append(tag)
        rows = self._query(
            "select c.*, (select count(*) from chats h where h.companion_id = c.id) as chat_count, "
            "(select max(m.created_at) from chats h join messages m on m.chat_id = h.id "
            "where h.companion_id = c.id and m.greeting = 0) as last_chat_at "
            f"from companions c where {clause} order by {COMPANION_ORDER[sort].format(order=order)} "
            "limit ? offset ?", params + [limit, offset])
        total = self._one(f"select count(*) as n from companions c where {clause}", params)["n"]
        return [companion_row(row) for row in rows], total

    def delete_companion(self, companion_id: int) -> None:
        """Delete a companion; its chats, messages, memories and examples go with it."""
        with self.transaction() as db:
            db.execute("delete from companions where id = ?", [companion_id])
            self._changed("companion.deleted", {"id": companion_id})

    def create_user(self, name: str, persona: str) -> int:
        now = now_iso()
        with self.transaction():
            user_id = self._insert("users", {"name": name, "persona": persona, "created_at": now, "updated_at": now})
            self._changed("persona.created", {"id": user_id})
        return user_id

    def delete_user(self, user_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from users where id = ?", [user_id])
            self._changed("persona.deleted", {"id": user_id})

    def get_user(self, user_id: int) -> dict | None:
        return self._one("select * from users where id = ?", [user_id])

    def update_user(self, user_id: int, fields: dict) -> None:
        with self.transaction():
            self._update("users", user_id, {**fields, "updated_at": now_iso()})
            self._changed("persona.changed", {"id": user_id, "fields": sorted(fields)})

    # generation presets ------------------------------------------------------------------

    def create_preset(self, name: str, settings: dict, extra: dict | None = None) -> int:
        now = now_iso()
        with self.transaction():
            preset_id = self._insert("presets", {
                "name": name, "settings": json.dumps(settings, ensure_ascii=False),
                "extra": json.dumps(extra or {}, ensure_ascii=False), "created_at": now, "updated_at": now})
            self._changed("preset.created", {"id": preset_id, "name": name})
        return preset_id

    def get_preset(self, preset_id: int) -> PresetRow | None:
        row = self._one("select * from presets where id = ?", [preset_id])
        return preset_row(row) if row else None

    def list_presets(self, limit: int, offset: int) -> tuple[list[PresetRow], int]:
        """A page of presets: the built-in ones first, then by id."""
        rows = self._query("select * from presets order by builtin desc, id limit ? offset ?", [limit, offset])
        return [preset_row(row) for row in rows], self.count("presets")

    def update_preset(self, preset_id: int, name: str, settings: dict) -> None:
        with self.transaction():
            self._update("presets", preset_id, {"name": name, "settings": json.dumps(settings, ensure_ascii=False),
                                                "updated_at": now_iso()})
            self._changed("preset.changed", {"id": preset_id})

    def preset_users(self, preset_id: int) -> list[int]:
        """The companions that use a preset."""
        return [r["id"] for r in self._query("select id from companions where preset_id = ? order by id", [preset_id])]

    def delete_preset(self, preset_id: int) -> list[int]:
        """Delete a preset; the companions that used it use none (returned)."""
        with self.transaction() as db:
            users = self.preset_users(preset_id)
            for companion_id in users:
                self.update_companion(companion_id, {"preset_id": None})
            db.execute("delete from presets where id = ?", [preset_id])
            self._changed("preset.deleted", {"id": preset_id, "companion_ids": users})
        return users

    # chats and messages ------------------------------------------------------------------

    def create_chat(self, companion_id: int, title: str = "", greeting: str | None = None) -> int:
        """Open a new chat for a companion, make it its active chat, and greet in it
        (with its first message, or the greeting given)."""
        with self.transaction():
            chat_id = self._insert(
                "chats", {"companion_id": companion_id, "title": title, "created_at": now_iso()})
            self._changed("chat.created", {"id": chat_id, "companion_id": companion_id})
            self._insert("chat_members", {"chat_id": chat_id, "companion_id": companion_id, "position": 0})
            self._update("companions", companion_id, {"active_chat_id": chat_id})
            if greeting is None:
                self.add_greeting(chat_id)
            elif greeting:
                self.add_message(chat_id, ai=True, text=greeting, greeting=True)
        return int(chat_id)

    def get_chat(self, chat_id: int) -> ChatRow | None:
        row = self._one("select * from chats where id = ?", [chat_id])
        return self._chat_rows([row])[0] if row else None

    def _chat_rows(self, rows: list[dict]) -> list[ChatRow]:
        """Chats rows decoded, with their members."""
        members: dict[int, list[int]] = {row["id"]: [] for row in rows}
        for start in range(0, len(rows), 900):
            part = [row["id"] for row in rows[start:start + 900]]
            for member in self._query(f"select chat_id, companion_id from chat_members where chat_id in "
                                      f"({','.join('?' * len(part))}) order by chat_id, position", part):
                members[member["chat_id"]].append(member["companion_id"])
        for row in rows:
            row["story_so_far"] = bool(row["story_so_far"])
            row["members"] = members[row["id"]]
        return rows  # type: ignore[return-value]

    def chat_members(self, chat_id: int) -> list[int]:
        """A chat's member companions, in order."""
        return [r["companion_id"] for r in self._query(
            "select companion_id from chat_members where chat_id = ? order by position", [chat_id])]

    def add_greeting(self, chat_id: int) -> None:
        """Open a chat with its companion's first message, when it has one."""
        row = self._one(
            "select c.first_message from chats h join companions c on c.id = h.companion_id "
            "where h.id = ?", [chat_id])
        if row and row["first_message"]:
            self.add_message(chat_id, ai=True, text=row["first_message"], greeting=True)

    def active_chat_id(self, companion_id: int) -> int:
        """The companion's current chat, opening one if it has none."""
        row = self._one(
            "select h.id from companions c join chats h on h.id = c.active_chat_id where c.id = ?",
            [companion_id])
        if row:
            return int(row["id"])
        return self.create_chat(companion_id)

    def messages(self, chat_id: int, limit: int | None = None) -> list[MessageRow]:
        """A chat's messages, oldest first; with limit, only the newest `limit`."""
        if limit is None:
            rows = self._query("select * from messages where chat_id = ? order by id", [chat_id])
        else:
            rows = self._query(
                "select * from messages where chat_id = ? order by id desc limit ?", [chat_id, limit])[::-1]
        return [message_row(r) for r in rows]

    def has_user_message(self, chat_id: int) -> bool:
        """Whether the person has written in a chat."""
        return self._one("select 1 as x from messages where chat_id = ? and ai = 0 limit 1", [chat_id]) is not None

    def count_initiated(self, companion_id: int, since: str) -> int:
        """Messages a companion wrote first since a UTC ISO time."""
        return self._one("select count(*) as n from messages where companion_id = ? and initiated = 1 "
                         "and created_at >= ?", [companion_id, since])["n"]

    def companions_with_initiative(self) -> list[CompanionRow]:
        """The companions that turned writing first on."""
        rows = self._query("select * from companions where json_extract(initiative, '$.enabled') = 1 order by id")
        return [companion_row(row) for row in rows]

    def count_messages(self, chat_id: int) -> int:
        return self._one("select count(*) as n from messages where chat_id = ?", [chat_id])["n"]

    def get_message(self, message_id: int) -> MessageRow | None:
        row = self._one("select * from messages where id = ?", [message_id])
        return message_row(row) if row else None

    def set_swipes(self, message_id: int, swipes: list[str], swipe_id: int) -> None:
        """A reply's alternatives and the chosen one (which becomes its text)."""
        with self.transaction():
            self._update("messages", message_id, {"swipes": json.dumps(swipes, ensure_ascii=False),
                                                  "swipe_id": swipe_id, "text": swipes[swipe_id]})
            self._message_changed("message.swiped", message_id)

    def list_chats(self, companion_id: int | None, limit: int, offset: int,
                   group_id: int | None = None) -> tuple[list[ChatRow], int]:
        """Chats (of one companion, not its groups'; of one group; or all), newest first, with
        message counts."""
        where, params = ("", [])
        if group_id:
            where, params = "where h.group_id = ?", [group_id]
        elif companion_id:
            where, params = "where h.companion_id = ? and h.group_id is null", [companion_id]
        rows = self._query(
            f"select h.*, count(m.id) as message_count, max(m.created_at) as last_message_at "
            f"from chats h left join messages m on m.chat_id = h.id {where} "
            f"group by h.id order by h.id desc limit ? offset ?", params + [limit, offset])
        total = self._one(f"select count(*) as n from chats h {where}", params)["n"]
        return self._chat_rows(rows), total

    # groups ------------------------------------------------------------------------------

    def create_group(self, name: str, strategy: str, members: list[dict], preset_id: int | None = None) -> int:
        """A group with its members ({companion_id, muted, talkativeness}, in order) and a first chat."""
        now = now_iso()
        with self.transaction():
            group_id = self._insert("companion_groups", {"name": name, "strategy": strategy, "preset_id": preset_id,
                                                         "created_at": now, "updated_at": now})
            self._set_members(group_id, members)
            self._changed("group.created", {"id": group_id, "name": name})
            self.create_group_chat(group_id)
        return group_id

    def _set_members(self, group_id: int, members: list[dict]) -> None:
        self.db.execute("delete from group_members where group_id = ?", [group_id])
        for position, member in enumerate(members):
            self._insert("group_members", {"group_id": group_id, "companion_id": member["companion_id"],
                                           "position": position, "muted": int(bool(member.get("muted"))),
                                           "talkativeness": member.get("talkativeness")})

    def update_group(self, group_id: int, values: dict, members: list[dict] | None = None) -> None:
        """Change a group's name or strategy, and (given) its members, in its chats too."""
        with self.transaction() as db:
            self._update("companion_groups", group_id, {**values, "updated_at": now_iso()})
            if members is not None:
                self._set_members(group_id, members)
                first = members[0]["companion_id"]
                for chat in self._query("select id from chats where group_id = ?", [group_id]):
                    db.execute("update chats set companion_id = ? where id = ?", [first, chat["id"]])
                    db.execute("delete from chat_members where chat_id = ?", [chat["id"]])
                    for position, member in enumerate(members):
                        self._insert("chat_members", {"chat_id": chat["id"], "companion_id": member["companion_id"],
                                                      "position": position})
            self._changed("group.changed", {"id": group_id})

    def get_group(self, group_id: int) -> dict | None:
        """A group with its members in order ({companion_id, muted, talkativeness})."""
        row = self._one("select * from companion_groups where id = ?", [group_id])
        if row is None:
            return None
        row["members"] = [{"companion_id": m["companion_id"], "muted": bool(m["muted"]),
                           "talkativeness": m["talkativeness"]} for m in self._query(
            "select * from group_members where group_id = ? order by position", [group_id])]
        return row

    def list_groups(self, limit: int, offset: int) -> tuple[list[dict], int]:
        ids = [r["id"] for r in self._query("select id from companion_groups order by id limit ? offset ?",
                                             [limit, offset])]
        return [self.get_group(i) for i in ids], self.count("companion_groups")  # type: ignore[misc]

    def delete_group(self, group_id: int) -> None:
        """Delete a group and its chats (their messages go with them)."""
        with self.transaction() as db:
            db.execute("delete from companion_groups where id = ?", [group_id])
            self._changed("group.deleted", {"id": group_id})

    def set_group_chat(self, group_id: int, chat_id: int, replacing: int | None = None) -> None:
        """Make a chat its group's active chat (only where the active one is `replacing`, when given)."""
        sql, params = "update companion_groups set active_chat_id = ? where id = ?", [chat_id, group_id]
        if replacing is not None:
            sql, params = sql + " and active_chat_id = ?", params + [replacing]
        with self.transaction() as db:
            db.execute(sql, params)

    def groups_of(self, companion_id: int) -> list[dict]:
        """The groups a companion belongs to (id, name)."""
        return self._query("select g.id, g.name from companion_groups g join group_members m on m.group_id = g.id "
                           "where m.companion_id = ? order by g.id", [companion_id])

    def create_group_chat(self, group_id: int, title: str = "") -> int:
        """A new chat of a group, its members the group's, made the group's active chat."""
        with self.transaction():
            members = [m["companion_id"] for m in self._query(
                "select companion_id from group_members where group_id = ? order by position", [group_id])]
            chat_id = self._insert("chats", {"companion_id": members[0], "title": title, "created_at": now_iso(),
                                             "group_id": group_id})
            for position, companion_id in enumerate(members):
                self._insert("chat_members", {"chat_id": chat_id, "companion_id": companion_id, "position": position})
            self.set_group_chat(group_id, chat_id)
            self._changed("chat.created", {"id": chat_id, "companion_id": members[0], "group_id": group_id})
        return chat_id

    def update_chat(self, chat_id: int, values: dict) -> None:
        """Change a chat's title, story_so_far or story."""
        unknown = set(values) - {"title", "story_so_far", "story"}
        if unknown:
            raise KeyError(f"not chat fields: {sorted(unknown)}")
        with self.transaction():
            self._update("chats", chat_id, values)
            self._changed("chat.changed", {"id": chat_id, "fields": sorted(values)})

    # summaries -------------------------------------------------------------------------

    def set_window_start(self, chat_id: int, message_id: int) -> bool:
        """Record where the chat's prompt history window starts; True when it moved on."""
        with self.transaction():
            row = self._one("select window_start_id from chats where id = ?", [chat_id])
            if row is None or (row["window_start_id"] or 0) >= message_id:
                return False
            self._update("chats", chat_id, {"window_start_id": message_id})
            return True

    def chats_to_summarize(self) -> list[int]:
        """Chats with messages that left the history window and are not summarized yet."""
        return [r["id"] for r in self._query(
            "select h.id from chats h where h.window_start_id is not null and exists "
            "(select 1 from messages m where m.chat_id = h.id and m.id > h.summarized_through "
            "and m.id < h.window_start_id) order by h.id")]

    def messages_to_summarize(self, chat_id: int, limit: int) -> list[MessageRow]:
        """The oldest messages of a chat that left its history window unsummarized (at most limit)."""
        return [message_row(r) for r in self._query(
            "select m.* from messages m join chats h on h.id = m.chat_id where m.chat_id = ? "
            "and m.id > h.summarized_through and m.id < coalesce(h.window_start_id, 0) "
            "order by m.id limit ?", [chat_id, limit])]

    def set_summarized_through(self, chat_id: int, message_id: int) -> None:
        self._update("chats", chat_id, {"summarized_through": message_id})

    def chat_summaries(self, chat_id: int) -> list[dict]:
        """A chat's summaries, oldest first."""
        return self._query("select * from memories where chat_id = ? and source = 'summary' "
                           "order by first_message_id, id", [chat_id])

    def delete_chat(self, chat_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from chats where id = ?", [chat_id])
            self._changed("chat.deleted", {"id": chat_id})

    def page_messages(self, chat_id: int, limit: int, offset: int) -> list[MessageRow]:
        return [message_row(r) for r in self._query(
            "select * from messages where chat_id = ? order by id limit ? offset ?", [chat_id, limit, offset])]

    def search_messages(self, query: str, companion_id: int | None, chat_id: int | None,
                        limit: int, offset: int) -> tuple[list[dict], int]:
        """Full-text search (FTS5, ranked by bm25) with a highlighted snippet, chat and companion."""
        clause, params = conditions(("messages_fts match ?", query), ("h.companion_id = ?", companion_id),
                                    ("m.chat_id = ?", chat_id))
        base = (f"from messages_fts join messages m on m.id = messages_fts.rowid "
                f"join chats h on h.id = m.chat_id where {clause}")
        rows = self._query(
            f"select m.id, m.chat_id, h.companion_id, h.group_id, m.ai, m.text, m.created_at, "
            f"m.companion_id as speaker_companion_id, m.user_id as speaker_user_id, "
            f"snippet(messages_fts, 0, '[', ']', '…', 12) as snippet, bm25(messages_fts) as rank "
            f"{base} order by rank limit ? offset ?", params + [limit, offset])
        for row in rows:
            row["ai"] = bool(row["ai"])
        total = self._one(f"select count(*) as n {base}", params)["n"]
        return rows, total

    def add_message(self, chat_id: int, ai: bool, text: str, greeting: bool = False,
                    created_at: str | None = None, speaker_id: int | None = None,
                    initiated: bool = False) -> MessageRow:
        """Append one message to a chat; returns the stored row. The speaker is a companion
        (ai) or a user persona; by default the chat's first member or the active persona.
        initiated: the companion wrote it first."""
        message_id = self._insert("messages", {
            "chat_id": chat_id, "ai": int(ai), "text": text, "greeting": int(greeting), "initiated": int(initiated),
            "created_at": utc_iso(created_at), **self._speaker(chat_id, ai, speaker_id),
        })
        row = self.get_message(message_id)
        self._changed("message.created", {"chat_id": chat_id, "message": row})
        return row  # type: ignore[return-value]

    def _speaker(self, chat_id: int, ai: bool, speaker_id: int | None) -> dict:
        if ai:
            members = self.chat_members(chat_id) if speaker_id is None else [speaker_id]
            return {"companion_id": members[0] if members else None}
        return {"user_id": speaker_id or self.active_user_id()}

    def add_messages(self, chat_id: int, items: list[tuple]) -> list[int]:
        """Append many messages, (ai, text) or (ai, text, created_at), in one transaction;
        returns their ids in order. Messages without a time get now; speakers as add_message."""
        now = now_iso()
        ids = []
        with self.transaction():
            speakers = {ai: self._speaker(chat_id, ai, None) for ai in (True, False)}
            for ai, text, *when in items:
                ids.append(self._insert(
                    "messages", {"chat_id": chat_id, "ai": int(ai), "text": text, "greeting": 0,
                                 "created_at": utc_iso(when[0]) if when and when[0] else now,
                                 **speakers[bool(ai)]}))
            self._changed("chat.changed", {"id": chat_id, "fields": ["messages"]})
        return ids

    def messages_by_ids(self, ids: list[int]) -> list[MessageRow]:
        """Messages by id, in the order of ids (missing ones left out)."""
        rows = {r["id"]: message_row(r) for r in self._by_ids("select * from messages", ids)}
        return [rows[i] for i in ids if i in rows]

    def set_message_text(self, message_id: int, text: str) -> None:
        with self.transaction():
            self._update("messages", message_id, {"text": text})
            self._message_changed("message.edited", message_id)

    def _message_changed(self, kind: str, message_id: int) -> None:
        row = self.get_message(message_id)
        if row is not None:
            self._changed(kind, {"chat_id": row["chat_id"], "message": row})

    def delete_message(self, message_id: int) -> None:
        with self.transaction() as db:
            row = self._one("select chat_id from messages where id = ?", [message_id])
            db.execute("delete from messages where id = ?", [message_id])
            if row:
                self._changed("message.deleted", {"chat_id": row["chat_id"], "id": message_id})

    def clear_chat(self, chat_id: int) -> None:
        """Delete every message of a chat."""
        with self.transaction() as db:
            db.execute("delete from messages where chat_id = ?", [chat_id])
            self._changed("chat.changed", {"id": chat_id, "fields": ["messages"]})

    def count(self, table: str) -> int:
        with self._lock:
            return self.db[table].count

    # lorebooks ---------------------------------------------------------------------------

    def add_lorebook(self, name: str, fmt: str, data: dict) -> int:
        now = now_iso()
        return self._insert("lorebooks", {"name": name, "format": fmt, "created_at": now, "updated_at": now,
                                          "data": json.dumps(data, ensure_ascii=False)})

    def get_lorebook(self, lorebook_id: int) -> dict | None:
        row = self._one("select * from lorebooks where id = ?", [lorebook_id])
        if row is not None:
            row["data"] = json.loads(row["data"])
            row["companion_ids"] = [r["companion_id"] for r in self._query(
                "select companion_id from companion_lorebooks where lorebook_id = ? order by companion_id",
                [lorebook_id])]
        return row

    def list_lorebooks(self, limit: int, offset: int) -> list[dict]:
        rows = self._query("select id from lorebooks order by id limit ? offset ?", [limit, offset])
        return [self.get_lorebook(r["id"]) for r in rows]

    def set_lorebook(self, lorebook_id: int, name: str, data: dict) -> None:
        self._update("lorebooks", lorebook_id, {"name": name, "updated_at": now_iso(),
                                                "data": json.dumps(data, ensure_ascii=False)})

    def lorebook_in_use(self, lorebook_id: int, besides: int) -> bool:
        """Whether a companion other than `besides` has the lorebook attached or as its card's."""
        row = self._one(
            "select exists(select 1 from companion_lorebooks where lorebook_id = ? and companion_id != ?) "
            "or exists(select 1 from companions where card_lorebook_id = ? and id != ?) as used",
            [lorebook_id, besides, lorebook_id, besides])
        return bool(row["used"])

    def delete_lorebook(self, lorebook_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from lorebooks where id = ?", [lorebook_id])

    def attach_lorebook(self, companion_id: int, lorebook_id: int) -> None:
        with self.transaction() as db:
            db.execute("insert or ignore into companion_lorebooks (companion_id, lorebook_id) values (?, ?)",
                       [companion_id, lorebook_id])

    def detach_lorebook(self, companion_id: int, lorebook_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from companion_lorebooks where companion_id = ? and lorebook_id = ?",
                       [companion_id, lorebook_id])

    def companion_lorebook_ids(self, companion_id: int) -> list[int]:
        return [r["lorebook_id"] for r in self._query(
            "select lorebook_id from companion_lorebooks where companion_id = ? order by rowid", [companion_id])]

    def companion_lorebooks(self, companion_id: int) -> list[dict]:
        """The lorebooks attached to a companion, in the order they were attached."""
        rows = self._query("select lorebook_id from companion_lorebooks where companion_id = ? order by rowid",
                           [companion_id])
        return [self.get_lorebook(r["lorebook_id"]) for r in rows]

    # long-term memory rows ---------------------------------------------------------------

    def add_memory(self, companion_id: int, text: str, source: str,
                   user_message_id: int | None = None, reply_message_id: int | None = None,
                   created_at: str | None = None, document_id: int | None = None,
                   covers: tuple[int, int, int] | None = None) -> dict:
        """Insert one memory row; the caller indexes it. covers: (chat id, first message id,
        last message id) of the messages a summary sums up."""
        chat_id, first_id, last_id = covers or (None, None, None)
        memory_id = self._insert("memories", {
            "companion_id": companion_id, "text": text, "source": source,
            "user_message_id": user_message_id, "reply_message_id": reply_message_id,
            "created_at": utc_iso(created_at), "document_id": document_id,
            "chat_id": chat_id, "first_message_id": first_id, "last_message_id": last_id,
        })
        self._changed("memory.added", {"id": memory_id, "companion_id": companion_id, "source": source,
                                       "chat_id": chat_id})
        return self.get_memory(memory_id)

    def get_memory(self, memory_id: int) -> dict | None:
        return self._one("select * from memories where id = ?", [memory_id])

    def memories_by_ids(self, ids: list[int]) -> list[dict]:
        return self._by_ids("select * from memories", ids)

    def memories_of_messages(self, message_ids: list[int]) -> list[dict]:
        """Memory rows made from any of these messages."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        return self._query(
            f"select * from memories where user_message_id in ({marks}) "
            f"or reply_message_id in ({marks})", list(message_ids) * 2)

    def memory_ids(self, companion_id: int | None = None) -> list[int]:
        if companion_id is None:
            return [r["id"] for r in self._query("select id from memories")]
        return [r["id"] for r in self._query(
            "select id from memories where companion_id = ?", [companion_id])]

    def iter_memories(self, batch: int = 256) -> Iterator[list[dict]]:
        """Every memory row, in batches, for (re)indexing."""
        last = 0
        while True:
            rows = self._query(
                "select * from memories where id > ? order by id limit ?", [last, batch])
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]

    def memory_facts(self, ids: list[int]) -> list[dict]:
        """(id, companion_id, created_at, text) of memory rows, for the vector index's copy."""
        return self._by_ids("select id, companion_id, created_at, text from memories", ids)

    def match_memories(self, match: str, companion_id: int, limit: int,
                       since: str | None = None, until: str | None = None) -> list[int]:
        """Ids of a companion's memories matching an FTS5 query, best bm25 first; since/until
        (UTC ISO) narrow it to a time window [since, until)."""
        clause, params = conditions(("memories_fts match ?", match), ("m.companion_id = ?", companion_id),
                                    ("m.created_at >= ?", since), ("m.created_at < ?", until))
        rows = self._query(
            "select m.id from memories_fts join memories m on m.id = memories_fts.rowid "
            f"where {clause} order by bm25(memories_fts) limit ?", params + [limit])
        return [r["id"] for r in rows]

    def set_memory_text(self, memory_id: int, text: str) -> None:
        with self.transaction():
            self._update("memories", memory_id, {"text": text})
            self._changed("memory.changed", {"id": memory_id})

    def delete_memories(self, ids: list[int]) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self.transaction() as db:
            db.execute(f"delete from memories where id in ({marks})", list(ids))
            self._changed("memory.deleted", {"ids": list(ids)})

    def list_memories(self, companion_id: int, limit: int, offset: int) -> list[dict]:
        """A companion's memories, newest first."""
        return self._query("select * from memories where companion_id = ? order by id desc limit ? offset ?",
                           [companion_id, limit, offset])

    def count_memories(self, companion_id: int) -> int:
        return self._one("select count(*) as n from memories where companion_id = ?", [companion_id])["n"]

    # what a reply used ---------------------------------------------------------------------

    def set_context(self, message_id: int, memories: list[dict], lore: list[dict]) -> None:
        with self.transaction() as db:
            db.execute("insert or replace into message_context (message_id, memories, lore) values (?, ?, ?)",
                       [message_id, json.dumps(memories, ensure_ascii=False), json.dumps(lore, ensure_ascii=False)])

    def get_context(self, message_id: int) -> dict | None:
        row = self._one("select * from message_context where message_id = ?", [message_id])
        if row is None:
            return None
        return {"memories": json.loads(row["memories"]), "lore": json.loads(row["lore"])}

    # documents -----------------------------------------------------------------------------

    def add_document(self, companion_id: int, name: str, media_type: str, size: int) -> int:
        return self._insert("documents", {"companion_id": companion_id, "name": name, "media_type": media_type,
                                          "size": size, "chunks": 0, "created_at": now_iso()})

    def set_document_chunks(self, document_id: int, chunks: int) -> None:
        self._update("documents", document_id, {"chunks": chunks})

    def get_document(self, document_id: int) -> dict | None:
        return self._one("select * from documents where id = ?", [document_id])

    def list_documents(self, companion_id: int, limit: int, offset: int) -> list[dict]:
        return self._query("select * from documents where companion_id = ? order by id desc limit ? offset ?",
                           [companion_id, limit, offset])

    def count_documents(self, companion_id: int) -> int:
        return self._one("select count(*) as n from documents where companion_id = ?", [companion_id])["n"]

    def document_memory_ids(self, document_id: int) -> list[int]:
        return [r["id"] for r in self._query("select id from memories where document_id = ?", [document_id])]

    def delete_document(self, document_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from memories where document_id = ?", [document_id])
            db.execute("delete from documents where id = ?", [document_id])

    # dialogue tuning ---------------------------------------------------------------------

    def add_tuning_example(self, companion_id: int, user_text: str, ai_text: str) -> None:
        self._insert("tuning_examples", {"companion_id": companion_id, "user_text": user_text,
                                         "ai_text": ai_text, "created_at": now_iso()})

    def latest_tuning_example(self, companion_id: int) -> dict | None:
        return self._one("select * from tuning_examples where companion_id = ? "
                         "order by id desc limit 1", [companion_id])

    def clear_tuning_examples(self, companion_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from tuning_examples where companion_id = ?", [companion_id])

    def integrity_check(self) -> str:
        """SQLite's own check: 'ok' when the file is sound."""
        return self._one("PRAGMA integrity_check")["integrity_check"]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the pending migrations, each in its own transaction; returns their names."""
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending
