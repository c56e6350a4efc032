"""A chat's KV cache kept on disk: reused after a restart and after a switch between chats."""

from __future__ import annotations

import logging
import shutil

import pytest
from conftest import test_settings

from companion.formats.cards import normalize_card
from companion.model.kv_states import StateFiles
from companion.services import build_services

PERSONA = ("{{char}} is a retired lighthouse keeper who knows every ship that passed the cape in forty years, "
           "tells long stories about storms, fog and the people who waited for the boats, and asks "
           "{{user}} about their day. ") * 6


def test_a_state_file_comes_back_as_written_and_only_for_its_fingerprint(tmp_path, caplog):
    files = StateFiles(tmp_path, max_bytes=10_000)
    files.write("7", "model-a", [1, 2, 3], b"kv-bytes")
    saved = files.read("7", "model-a")
    assert saved.tokens == [1, 2, 3] and saved.data() == b"kv-bytes"
    assert files.read("8", "model-a") is None
    with caplog.at_level(logging.INFO, logger="companion.model.kv_states"):
        assert files.read("7", "model-b") is None              # another model: never loaded
    assert "another model" in caplog.text and not files.path("7").exists()


def test_a_state_file_cut_short_is_ignored(tmp_path, caplog):
    files = StateFiles(tmp_path, max_bytes=10_000)
    files.write("7", "m", [1, 2, 3], b"x" * 100)
    path = files.path("7")
    path.write_bytes(path.read_bytes()[:-10])                    # a crash in mid-write, say
    with caplog.at_level(logging.WARNING, logger="companion.model.kv_states"):
        assert files.read("7", "m") is None
    assert "cut short" in caplog.text and not path.exists()


def test_a_failed_write_leaves_no_file_and_the_least_recently_used_go_first(tmp_path):
    files = StateFiles(tmp_path, max_bytes=2_500)

    class Broken(bytes):
        def __len__(self):
            raise OSError("disk full")

    with pytest.raises(OSError):
        files.write("1", "m", [1], Broken(b"x"))
    assert list(tmp_path.iterdir()) == []
    for key in ("1", "2", "3"):
        files.write(key, "m", [1], b"x" * 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.kv", "3.kv"]    # within 2,500 bytes
    files.read("2", "m")                                                     # 2 is used: 3 goes next
    files.write("4", "m", [1], b"x" * 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.kv", "4.kv"]


def evaluated_tokens(services) -> list[int]:
    """Counts the prompt tokens llama.cpp evaluates from now on (one entry per eval call)."""
    llama = services.generator._llama
    counts: list[int] = []
    real_eval = llama.eval

    def counting(tokens):
        counts.append(len(tokens))
        return real_eval(tokens)

    llama.eval = counting
    return counts


def started(settings, embedder):
    services = build_services(settings, embedder=embedder)       # a model of its own: a restart
    services.generator.load()
    assert services.generator.state == "ready", services.generator.error
    return services


@pytest.fixture
def long_chat(tmp_path, embedder):
    """A data dir with a chat of a few turns and a long card, its state saved when it stopped."""
    settings = test_settings(tmp_path / "data")
    services = started(settings, embedder)
    companion = services.companions.active_companion_id()
    services.store.update_companion(companion, {"persona": PERSONA})
    chat_id = services.companions.active_chat_id()
    for line in ["Good evening! How was the sea today?", "Tell me about the worst storm you saw."]:
        services.turns.send(chat_id, line)
    services.close()
    return settings, chat_id


def test_a_chats_kv_cache_is_reused_after_a_restart(long_chat, embedder, tmp_path):
    settings, chat_id = long_chat
    assert list((tmp_path / "data" / "kv_cache").glob("*.kv"))

    cold_settings = test_settings(tmp_path / "cold")
    shutil.copytree(tmp_path / "data", tmp_path / "cold", ignore=shutil.ignore_patterns("kv_cache"))
    for name, the_settings in (("restored", settings), ("cold", cold_settings)):
        services = started(the_settings, embedder)
        try:
            counts = evaluated_tokens(services)
            turn = services.turns.start_send(chat_id, "And what did you do when the fog came?")
            turn.run()
            prompt = services.generator.prompt_tokens(turn.request)
            if name == "restored":
                assert services.turns.states.restored == 1
                assert sum(counts) < prompt / 3, (counts, prompt)     # only what is new since the stop
            else:
                assert services.turns.states.restored == 0 and sum(counts) >= prompt - 1, (counts, prompt)
        finally:
            services.close()


def test_switching_chats_keeps_each_chats_kv_cache(long_chat, embedder):
    settings, first_chat = long_chat
    services = started(settings, embedder)
    try:
        turns = services.turns
        turns.send(first_chat, "Do you miss the lighthouse?")
        other = services.chats.create(services.companions.active_companion_id())["id"]
        turns.send(other, "Hello, who are you?")                    # the first chat's state is kept
        counts = evaluated_tokens(services)
        turn = turns.start_send(first_chat, "What was the lighthouse's name?")
        turn.run()
        assert turns.states.restored == 2                          # at the start, and after the switch
        assert sum(counts) < services.generator.prompt_tokens(turn.request) / 3
    finally:
        services.close()


def test_a_write_a_crash_cut_short_is_removed_at_start(tmp_path, caplog):
    """A SIGKILL during a save leaves `KEY.partial-PID-TID`, which no glob of `*.kv` ever removes
    (the soak of #28 found them kept for ever, each as large as a state): the next start removes them."""
    from companion.model.kv_states import ChatStates
    from companion.model.lock import ModelLock

    files = StateFiles(tmp_path, max_bytes=10_000)
    files.write("7", "m", [1, 2, 3], b"x" * 100)
    cut = tmp_path / "8.partial-4242-1"
    cut.write_bytes(b"companion-kv-state\n" + b"y" * 50)
    states = ChatStates(files, ModelLock(0), lambda: None)
    with caplog.at_level(logging.INFO, logger="companion.lru_files"):
        states.start()
    try:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["7.kv"] and "8.partial-4242-1" in caplog.text
        assert files.read("7", "m").data() == b"x" * 100
    finally:
        states.close()


def test_settling_waits_for_the_turn_to_let_go_of_the_model_without_polling(tmp_path):
    """After a turn, the KV-states thread waits for the model while the turn still holds it: it is
    woken when the turn lets go (it used to try the model every 20 ms) and settles then."""
    import time

    from companion.model.kv_states import ChatStates
    from companion.model.lock import ModelLock

    lock = ModelLock(0)
    states = ChatStates(StateFiles(tmp_path, max_bytes=0), lock, lambda: None)
    tries = []
    hold = lock.hold_for_background
    lock.hold_for_background = lambda: tries.append(1) or hold()
    lock.acquire()                          # a turn holds the model
    states.start()
    try:
        states.after_turn(7)
        time.sleep(0.5)
        assert states.unsettled and len(tries) <= 2, len(tries)
        lock.release()                      # the turn ends
        deadline = time.monotonic() + 2
        while states.unsettled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not states.unsettled
    finally:
        states.close()


def test_a_switch_writes_the_kept_state_later_and_a_switch_back_uses_it_meanwhile(tmp_path, embedder):
    """The chat that held the model is copied out of it at a switch and written to disk on the
    background thread, not by the turn that switched; switching back before it is written
    restores it from memory."""
    settings = test_settings(tmp_path / "data")
    services = started(settings, embedder)
    folder = tmp_path / "data" / "kv_cache"
    try:
        turns = services.turns
        services.store.update_companion(services.companions.active_companion_id(), {"persona": PERSONA})
        first = services.companions.active_chat_id()
        turns.send(first, "Good evening! How was the sea today?")
        other = services.chats.create(services.companions.active_companion_id())["id"]
        turns.send(other, "Hello, who are you?")         # the background thread is not running here
        assert not list(folder.glob("*.kv")) and str(first) in turns.states._pending
        counts = evaluated_tokens(services)
        turn = turns.start_send(first, "Tell me about the worst storm you saw.")
        turn.run()
        assert turns.states.restored == 1
        assert sum(counts) < services.generator.prompt_tokens(turn.request) / 3
        assert turns.states.save_now() and sorted(p.name for p in folder.glob("*.kv")) == [f"{first}.kv", f"{other}.kv"]
        assert not turns.states._pending
    finally:
        services.close()


def test_the_next_prompt_is_read_while_idle_and_a_swipe_gets_the_state_before_it(tmp_path, embedder):
    """After a turn, the chat's next prompt is read as far as it is known while the person writes:
    the next turn reads only what the rehearsal could not know (its note and message), also when
    the window moves on. When it moves on, the state before is kept first, and a swipe of the last
    reply (whose prompt is the old one) is restored from it."""
    settings = test_settings(tmp_path / "data")
    services = started(settings, embedder)
    try:
        turns = services.turns
        companion = services.companions.active_companion_id()
        services.store.update_companion(companion, {"persona": PERSONA, "short_term_mem": 4})
        chat_id = services.companions.active_chat_id()

        def send_reads_only_what_is_new(line: str, read_before: bool = True) -> None:
            coming = (turns.rehearse(chat_id) or []) if read_before else []
            counts = evaluated_tokens(services)
            turn = turns.start_send(chat_id, line)
            turn.run()
            prompt_read = counts[0] if counts[0] > 1 else 0     # then the last token alone, then the reply's
            assert prompt_read <= services.generator.prompt_tokens(turn.request) - len(coming), (line, counts)
            assert turns.states.settle_now()

        send_reads_only_what_is_new("Good evening!", read_before=False)    # nothing was read before it
        for line in ["How was the sea today?", "Tell me about the worst storm.", "Did the boats come back?",
                     "Who waited for them?", "What about the fog?"]:
            send_reads_only_what_is_new(line)
            if turns.states.kept_before == chat_id:
                break
        assert turns.states.kept_before == chat_id, "the window never moved on"
        assert turns.states.save_now()           # the state read ahead is the chat's (for a restart)
        fingerprint = services.generator.fingerprint()
        assert turns.states.files.read(str(chat_id), fingerprint).tokens == turns.rehearse(chat_id)
        assert turns.states.files.read(f"{chat_id}-before", fingerprint) is not None     # and the one before
        counts = evaluated_tokens(services)
        restored = turns.states.restored
        swipe = turns.start_regenerate(chat_id)
        swipe.run()
        assert turns.states.restored == restored + 1                 # the state from before the rehearsal
        assert sum(counts) < services.generator.prompt_tokens(swipe.request) / 3, counts
        assert turns.states.settle_now()
        send_reads_only_what_is_new("And the lighthouse?")
    finally:
        services.close()


def test_a_new_chats_start_is_read_before_its_first_turn_and_the_old_chat_is_kept(tmp_path, embedder):
    settings = test_settings(tmp_path / "data")
    services = started(settings, embedder)
    try:
        turns = services.turns
        companion = services.companions.active_companion_id()
        services.store.update_companion(companion, {"persona": PERSONA})
        first = services.companions.active_chat_id()
        turns.send(first, "Good evening! How was the sea today?")
        other = services.chats.create(companion)["id"]         # tells the KV states to open it
        assert turns.states.opening == other and turns.states.open_now()
        assert turns.states.owner == other and str(first) in turns.states._pending      # the old chat kept
        coming = turns.rehearse(other)
        assert coming and services.generator.cached_tokens()[:len(coming)] == coming
        counts = evaluated_tokens(services)
        turn = turns.start_send(other, "Hello, who are you?")
        turn.run()
        assert counts[0] <= services.generator.prompt_tokens(turn.request) - len(coming)   # its note and message
        counts = evaluated_tokens(services)
        back = turns.start_send(first, "And the fog?")
        back.run()
        assert turns.states.restored == 1 and sum(counts) < services.generator.prompt_tokens(back.request) / 3
    finally:
        services.close()


def test_a_deleted_chats_kept_states_go_with_it(tmp_path, embedder):
    """Deleting a chat removes its kept states (written and not yet written); the one the model
    holds is not saved afterwards. Deleting a companion does the same for its chats."""
    settings = test_settings(tmp_path / "data")
    services = started(settings, embedder)
    folder = tmp_path / "data" / "kv_cache"
    try:
        turns = services.turns
        companion = services.companions.active_companion_id()
        first = services.companions.active_chat_id()
        turns.send(first, "Good evening! How was the sea today?")
        other = services.chats.create(companion)["id"]
        turns.send(other, "Hello, who are you?")             # the first chat's state is taken, not written
        assert str(first) in turns.states._pending
        turns.states.files.write(f"{first}-before", services.generator.fingerprint(), [1, 2], b"xx")
        services.chats.delete(first)
        assert not turns.states._pending and not list(folder.glob(f"{first}*.kv"))
        assert turns.states.save_now() and [p.name for p in folder.glob("*.kv")] == [f"{other}.kv"]
        second = services.companions.create(normalize_card({"name": "Bea", "first_mes": "Hi!"}), {})
        chat = second["active_chat_id"]
        turns.send(chat, "Hi Bea!")
        assert turns.states.save_now() and (folder / f"{chat}.kv").exists()
        services.companions.delete(second["id"])
        assert not (folder / f"{chat}.kv").exists() and not turns.states.unsaved
    finally:
        services.close()


def test_lore_the_history_triggers_is_read_ahead_with_the_next_prompts_start(tmp_path, embedder):
    """A new chat whose greeting triggers a lorebook entry: the entry's text opens the first turn's
    note, and it is read with the chat's start before the person writes, so the first turn reads
    only the rest of its note and its message."""
    settings = test_settings(tmp_path / "data")
    services = started(settings, embedder)
    try:
        turns = services.turns
        companion = services.companions.active_companion_id()
        lore = ("The lighthouse on the cape was built in 1852 of red granite; its lamp burns whale oil, its "
                "keeper climbs one hundred and twelve steps each dusk, and the fog bell rings every half minute "
                "when the mist comes in from the sea.")
        book = services.lorebooks.create({"name": "Cape"}, [{"keys": ["lighthouse"], "content": lore}])
        services.lorebooks.attach(companion, book["id"])
        services.store.update_companion(companion, {"persona": PERSONA,
                                                    "first_message": "Welcome to the lighthouse, traveller."})
        chat = services.chats.create(companion)["id"]
        assert turns.states.open_now() and turns.states.owner == chat
        coming = turns.rehearse(chat)
        assert lore in services.generator.detokenize(coming)        # read with the start
        counts = evaluated_tokens(services)
        turn = turns.start_send(chat, "Hello, who are you?")
        turn.run()
        assert [entry["content"] for entry in turn.lore] == [lore]  # the first turn's note shows it
        assert services.generator.cached_tokens()[:len(coming)] == coming
        assert counts[0] < services.generator.count_tokens(lore)    # and does not read it again
    finally:
        services.close()
