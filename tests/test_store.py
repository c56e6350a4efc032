"""The SQLite store: migrations, seeding, atomic writes."""

from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils

from companion.store import Store
from companion.store.migrations import migrate, migrations


def test_fresh_store_has_one_of_each_active(tmp_path):
    store = Store(tmp_path / "c.db")
    companion_id = store.active_companion_id()
    assert store.get_companion(companion_id)["name"] == "Assistant"
    assert store.get_user(store.active_user_id())["name"] == "User"
    chat_id = store.active_chat_id(companion_id)
    messages = store.messages(chat_id)
    assert len(messages) == 1 and messages[0]["greeting"] is True and messages[0]["swipes"] == []
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == "ok"
    store.close()


def test_migrations_run_once(tmp_path):
    store = Store(tmp_path / "c.db")
    assert migrate(store.db) == []
    assert [m.name for m in migrations.applied(store.db)] == ["m001_initial", "m002_companion_generation", "m003_lorebooks",
                                                                "m004_context_and_documents",
                                                                "m005_swipes_and_search", "m006_memory_words", "m007_summaries",
                                                                "m008_speakers_and_members", "m009_initiative", "m010_groups",
                                                                "m011_presets_and_persona_avatars", "m012_group_preset",
                                                                "m013_message_notes"]
    store.close()
    again = Store(tmp_path / "c.db")
    assert again.count("companions") == 1 and again.count("users") == 1
    again.close()


def test_transaction_is_all_or_nothing(tmp_path):
    store = Store(tmp_path / "c.db")
    chat_id = store.active_chat_id(store.active_companion_id())
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_message(chat_id, ai=False, text="one")
            store.add_memory(store.active_companion_id(), "m", "custom")
            raise RuntimeError("boom")
    assert store.count_messages(chat_id) == 1 and store.count("memories") == 0
    store.close()


def test_messages_limit_returns_newest_in_order(tmp_path):
    store = Store(tmp_path / "c.db")
    chat_id = store.active_chat_id(store.active_companion_id())
    store.add_messages(chat_id, [(False, "a"), (True, "b"), (False, "c")])
    assert [m["text"] for m in store.messages(chat_id, limit=2)] == ["b", "c"]
    store.close()


def test_messages_have_speakers_and_chats_members_also_after_the_migration(tmp_path):
    # a database as the previous release left it: chats of one companion, messages with only "ai"
    db = sqlite_utils.Database(sqlite3.connect(str(tmp_path / "c.db"), isolation_level=None))
    migrations.apply(db, stop_before="m008_speakers_and_members")
    db.execute("insert into users (name, persona, created_at, updated_at) values ('Ann', '', '', '')")
    db.execute("insert into users (name, persona, created_at, updated_at) values ('Bo', '', '', '')")
    db.execute("insert into state (key, value) values ('active_user_id', '2')")
    db.execute("insert into companions (name, persona, created_at, updated_at) values ('Mira', '', '', '')")
    db.execute("insert into chats (companion_id, title, created_at) values (1, '', '')")
    db.execute("insert into messages (chat_id, ai, text, created_at) values (1, 1, 'Hi', ''), (1, 0, 'Hello', '')")
    db.conn.close()

    store = Store(tmp_path / "c.db")
    greeting, said = store.messages(1)
    assert (greeting["ai"], greeting["companion_id"], greeting["user_id"]) == (True, 1, None)
    assert (said["ai"], said["companion_id"], said["user_id"]) == (False, None, 2)   # the persona in use then
    assert store.get_chat(1)["members"] == [1] and store.chat_members(1) == [1]

    # from now on: a new chat has its companion as member; messages name their speaker
    companion = store.create_companion({"name": "Kai"})
    chat = store.get_chat(store.active_chat_id(companion))
    assert chat["members"] == [companion]
    reply = store.add_message(chat["id"], ai=True, text="Hey")
    asked = store.add_message(chat["id"], ai=False, text="Yo", speaker_id=1)
    assert reply["companion_id"] == companion and asked["user_id"] == 1
    ids = store.add_messages(chat["id"], [(False, "a"), (True, "b")])
    assert [(m["user_id"], m["companion_id"]) for m in store.messages_by_ids(ids)] == [(2, None), (None, companion)]
    store.close()


def test_a_note_is_kept_with_its_message_also_after_the_migration(tmp_path):
    # a database as the previous release left it: a reply's context without notes
    db = sqlite_utils.Database(sqlite3.connect(str(tmp_path / "c.db"), isolation_level=None))
    migrations.apply(db, stop_before="m013_message_notes")
    db.execute("insert into companions (name, persona, created_at, updated_at) values ('Mira', '', '', '')")
    db.execute("insert into chats (companion_id, title, created_at) values (1, '', '')")
    db.execute("insert into messages (chat_id, ai, text, created_at) values (1, 0, 'Hello', ''), (1, 1, 'Hi', '')")
    db.execute("insert into message_context (message_id, memories, lore) values (2, '[{\"id\": 7}]', '[]')")
    db.conn.close()

    store = Store(tmp_path / "c.db")
    assert store.get_context(2) == {"memories": [{"id": 7}], "lore": []} and store.notes([1, 2]) == {}
    store.set_note(1, "{{char}} remembers:\n- a fact", [{"id": 7, "score": 0.5, "relevance": 0.4}],
                   [{"lorebook_id": 1, "entry": 0}])
    store.set_note(2, "Current date and time: now", [], [])
    store.set_context(2, [{"id": 8}], [])                 # a reply's context written again keeps its note
    notes = store.notes([1, 2, 3])
    assert notes[1] == {"note": "{{char}} remembers:\n- a fact", "memories": [{"id": 7, "score": 0.5, "relevance": 0.4}],
                        "lore": [{"lorebook_id": 1, "entry": 0}]}
    assert notes[2]["note"] == "Current date and time: now" and store.get_context(2)["memories"] == [{"id": 8}]
    store.set_note(1, "again", [], [])
    assert store.notes([1])[1] == {"note": "again", "memories": [], "lore": []}
    store.delete_message(1)
    assert 1 not in store.notes([1, 2])                 # the note goes with its message
    store.close()


def test_lorebooks_listed_while_one_is_deleted(tmp_path, monkeypatch):
    """Listing reads the ids and the books as one: a delete on another thread waits for it (when
    the two reads were apart, the deleted book failed the listing with a 500)."""
    import threading

    store = Store(tmp_path / "companion.db")
    companion_id = store.active_companion_id()
    books = [store.add_lorebook(name, "lorebook_v3", {"entries": []}) for name in ("First", "Second")]
    for book in books:
        store.attach_lorebook(companion_id, book)
    read_one = store.get_lorebook
    deleting: list[threading.Thread] = []

    def deleted_meanwhile(lorebook_id: int):
        if not deleting:   # between reading the ids and reading the first book, another thread deletes it
            deleting.append(threading.Thread(target=store.delete_lorebook, args=(books[0],)))
            deleting[0].start()
            deleting[0].join(0.3)
        return read_one(lorebook_id)

    monkeypatch.setattr(store, "get_lorebook", deleted_meanwhile)
    for listing in (lambda: store.list_lorebooks(50, 0), lambda: store.companion_lorebooks(companion_id)):
        deleting.clear()
        assert [book["name"] for book in listing()] in (["First", "Second"], ["Second"])
        deleting[0].join()
    assert [book["name"] for book in store.list_lorebooks(50, 0)] == ["Second"]
    store.close()


@pytest.mark.parametrize("add", ["message", "memory"])
def test_a_row_just_added_is_read_back_while_its_chat_is_deleted(tmp_path, monkeypatch, add):
    """A new message or memory is written and read back as one: deleting its chat on another
    thread in between waits (before, the delete's cascade could remove it first, and the add
    failed with an AssertionError, a 500)."""
    import threading

    store = Store(tmp_path / "companion.db")
    companion_id = store.active_companion_id()
    chat_id = store.create_chat(companion_id)
    insert = store._insert
    deleting: list[threading.Thread] = []

    def deleted_meanwhile(table: str, row: dict) -> int:
        row_id = insert(table, row)
        if not deleting:   # between the insert and the read back, another thread deletes the chat
            deleting.append(threading.Thread(target=store.delete_chat, args=(chat_id,)))
            deleting[0].start()
            deleting[0].join(0.3)
        return row_id

    monkeypatch.setattr(store, "_insert", deleted_meanwhile)
    if add == "message":
        row = store.add_message(chat_id, False, "Hello there")
        assert row["text"] == "Hello there"
    else:
        row = store.add_memory(companion_id, "A summary", "summary", covers=(chat_id, 1, 1))
        assert row["text"] == "A summary"
    deleting[0].join()
    assert store.get_chat(chat_id) is None
    store.close()
