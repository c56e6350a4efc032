"""The SQLite store: migrations, seeding, atomic writes."""

from __future__ import annotations

import pytest

from companion.store import Store, migrate, migrations


def test_fresh_store_has_one_of_each_active(tmp_path):
    store = Store(tmp_path / "c.db")
    companion_id = store.active_companion_id()
    assert store.get_companion(companion_id)["name"] == "Assistant"
    assert store.get_user(store.active_user_id())["name"] == "User"
    chat_id = store.active_chat_id(companion_id)
    messages = store.messages(chat_id)
    assert len(messages) == 1 and messages[0]["greeting"] == 1
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == "ok"
    store.close()


def test_migrations_run_once(tmp_path):
    store = Store(tmp_path / "c.db")
    assert migrate(store.db) == []
    assert [m.name for m in migrations.applied(store.db)] == ["m001_initial", "m002_companion_generation", "m003_lorebooks",
                                                                "m004_context_and_documents",
                                                                "m005_swipes_and_search", "m006_memory_words", "m007_summaries"]
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
