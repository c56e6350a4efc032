"""The schema, as migrations: each applied once, in order, in its own transaction."""

from __future__ import annotations

import json

import sqlite_utils
from sqlite_utils.migrations import Migrations

from companion.store.times import now_iso, utc_iso

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


@migrations()
def m013_message_notes(db: sqlite_utils.Database) -> None:
    # the note a turn's prompt put just before a message (the memories recalled for that turn, the
    # lore it triggered, the time), kept so that later prompts show it there again (a prompt then
    # grows by appending) and a swipe reuses it; note_shows: what it shows ({memories, lore})
    db.execute("alter table message_context add column note text")
    db.execute("alter table message_context add column note_shows text not null default '{}'")


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the pending migrations, each in its own transaction; returns their names."""
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending
