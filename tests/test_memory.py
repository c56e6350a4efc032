"""Long-term memory on the real embedder and real Chroma: recall, reconcile, rebuild."""

from __future__ import annotations

from conftest import open_memory

from companion.memory.embedder import Embedder


def test_recall_ranks_by_relevance_and_filters(tmp_path, embedder):
    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    memory.add(companion, "{{user}} has a sister called Maria who lives in Rome.", "custom")
    memory.add(companion, "{{user}} plays the cello every evening.", "custom")
    memory.add(companion, "The weather report says rain tomorrow.", "custom")
    found = memory.recall(companion, "What instrument do I play?", k=2, min_relevance=0.0)
    assert "cello" in found[0].text and 0 < found[0].score <= 1
    assert len(found) == 2
    # below the floor and no word in common: left out (a shared word would keep it)
    assert memory.recall(companion, "Which instrument is mine?", k=3, min_relevance=0.99) == []
    assert memory.recall(companion, "anything", k=0, min_relevance=0.0) == []
    assert memory.recall(companion + 1, "cello", k=3, min_relevance=0.0) == []


def test_recall_skips_memories_of_messages_in_the_window(tmp_path, embedder):
    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    chat = memory.store.active_chat_id(companion)
    ids = memory.store.add_messages(chat, [(False, "I love hiking"), (True, "Hiking is great!")])
    memory.add(companion, "{{user}}: I love hiking\n{{char}}: Hiking is great!", "exchange", ids[0], ids[1])
    assert memory.recall(companion, "hiking", 2, 0.0)
    assert memory.recall(companion, "hiking", 2, 0.0, exclude_message_ids={ids[1]}) == []


def test_reconcile_indexes_missing_rows_and_drops_orphans(tmp_path, embedder):
    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    kept = memory.add(companion, "indexed", "custom")
    orphan = memory.add(companion, "orphan", "custom")
    memory.store.delete_memories([orphan["id"]])          # row gone, vector left behind
    missing = memory.store.add_memory(companion, "never indexed", "custom")   # row without vector
    assert memory.reconcile() == (1, 1)
    assert memory.indexed_ids() == {kept["id"], missing["id"]}
    assert memory.reconcile() == (0, 0)


def test_rebuild_and_embedder_change(tmp_path, embedder):
    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    for n in range(5):
        memory.add(companion, f"fact number {n}", "custom")
    assert memory.rebuild() == 5 and memory.indexed_count() == 5
    # a different embedding model name: the old vectors are dropped, not mixed
    renamed = Embedder(embedder.path)
    renamed.name, renamed.state, renamed._model = "another-model", "ready", embedder._model
    renamed._ready.set()
    other = open_memory(tmp_path, renamed, store=memory.store, chroma="chroma2")
    other.index(memory.store.memories_by_ids(memory.store.memory_ids()))
    other._collection = None
    switched = open_memory(tmp_path, embedder, store=memory.store, chroma="chroma2")
    assert switched.indexed_count() == 0
    assert switched.reconcile() == (5, 0)


def test_recency_breaks_ties_and_duplicates_are_left_out(tmp_path, embedder):
    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    old = memory.store.add_memory(companion, "{{user}}: My car is a Volvo.", "custom",
                                  created_at="2020-01-01T00:00:00+00:00")
    new = memory.store.add_memory(companion, "{{user}}: My car is a Tesla.", "custom")
    twin = memory.store.add_memory(companion, "{{user}}: My car is a Tesla.", "custom")
    memory.index([old, new, twin])
    found = memory.recall(companion, "What car do I drive?", k=3, min_relevance=0.0)
    ids = [m.id for m in found]
    assert ids[0] in (new["id"], twin["id"]) and old["id"] in ids
    assert not {new["id"], twin["id"]} <= set(ids), "the same memory twice"
    assert found[0].score > found[0].relevance > 0     # the recency bonus is in the score


def test_recency_weight_zero_ranks_by_relevance_only(tmp_path, embedder):
    from companion.config import MemorySettings

    memory = open_memory(tmp_path, embedder, options=MemorySettings(recency_weight=0.0))
    companion = memory.store.active_companion_id()
    memory.store.add_memory(companion, "{{user}} loves hiking in the Alps.", "custom",
                            created_at="2001-01-01T00:00:00+00:00")
    memory.store.add_memory(companion, "{{user}} has a cat called Tom.", "custom")
    memory.index(memory.store.memories_by_ids(memory.store.memory_ids()))
    found = memory.recall(companion, "hiking in the Alps", k=2, min_relevance=0.0)
    assert "Alps" in found[0].text and found[0].score == 1.0    # first by meaning and by words, age ignored


def test_reconcile_rebuilds_a_deleted_chroma_folder(tmp_path, embedder):
    import shutil

    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    for n in range(4):
        memory.add(companion, f"fact {n}", "custom")
    memory.store.close()
    memory._client.clear_system_cache()       # the process lets go of the folder, as a stopped server does
    shutil.rmtree(tmp_path / "chroma")
    again = open_memory(tmp_path, embedder)
    assert again.indexed_count() == 0
    assert again.reconcile() == (4, 0)
    assert again.indexed_count() == 4 and again.recall(companion, "fact 2", 1, 0.0)


def test_editing_a_memory_deleted_meanwhile_is_not_found_and_tells_nothing(tmp_path, embedder):
    """The API looks the memory up before it edits it; a delete on another thread in between
    makes the edit a 404 (it was an AssertionError, a 500), with no change event told."""
    import pytest

    from companion.errors import NotFound

    memory = open_memory(tmp_path, embedder)
    companion = memory.store.active_companion_id()
    row = memory.add(companion, "{{user}} plays the cello.", "custom")
    told: list[str] = []
    memory.store.on_change = lambda kind, data: told.append(kind)
    memory.delete([row["id"]])
    told.clear()
    with pytest.raises(NotFound):
        memory.update_text(row["id"], "{{user}} plays the harp.")
    assert told == [] and memory.store.get_memory(row["id"]) is None
