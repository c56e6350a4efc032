"""Recall on stores with the shape of a real chat log: many near-identical chit-chat exchanges,
a few facts, facts that change, questions asked again, time words. Real embedder, real Chroma."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import open_memory

from companion.memory.index import VectorTable
from companion.memory.recall import LongTermMemory
from companion.memory.units import asked_only, embedded_text, is_question, reply_of, views, whole_text
from companion.memory.words import lexical_query

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)

GREETINGS = ["Good morning!", "Morning!", "Hi there!", "Hey, how are you?", "Hello again!", "Good night!",
             "Night night!", "I'm off to bed.", "Going to sleep now.", "See you tomorrow!"]
CHITCHAT = ["Work was {feel} today.", "Work was {feel} again, {event}.", "The weather is {weather} today.",
            "It's {weather} outside and I feel {feel}.", "I had {dish} for dinner.", "I'm making {dish} tonight.",
            "I watched a show about {subject}.", "I'm reading about {subject}, it's {feel}.",
            "I'm so tired today.", "Not much happening here.", "Just got home.", "I'm having a cup of tea.",
            "Today was {feel}.", "I went for a walk, it was {weather}.", "I'm bored, tell me something."]
WORDS = {
    "feel": ["long", "busy", "fine", "okay", "boring", "tiring", "good", "stressful", "quiet", "hectic"],
    "event": ["the meeting ran over", "my inbox exploded", "the printer broke", "we had a planning session"],
    "weather": ["rainy", "sunny", "grey", "windy", "cold", "warm", "foggy"],
    "dish": ["pasta", "soup", "a salad", "pizza", "curry", "rice and beans", "a sandwich", "noodles"],
    "subject": ["whales", "volcanoes", "bees", "ancient Rome", "the moon", "glaciers", "octopuses"],
}
REPLIES = ["That sounds nice!", "Oh no, I'm sorry.", "Tell me more!", "I see.", "Sleep well!", "Good morning to you too!",
           "How lovely.", "Hmm, interesting.", "I'm here for you.", "Ha, I can picture it."]


def chitchat(rng: random.Random) -> str:
    """One near-duplicate small-talk exchange in the daemon's memory form."""
    if rng.random() < 0.3:
        line = rng.choice(GREETINGS)
    else:
        line = rng.choice(CHITCHAT).format(**{k: rng.choice(v) for k, v in WORDS.items()})
    return f"{{{{user}}}}: {line}\n{{{{char}}}}: {rng.choice(REPLIES)}"


def build(tmp_path, embedder, texts: list[tuple[str, datetime]], companion_id: int | None = None) -> LongTermMemory:
    memory = open_memory(tmp_path, embedder)
    companion = companion_id or memory.store.active_companion_id()
    with memory.store.transaction():
        rows = [memory.store.add_memory(companion, text, "exchange", created_at=when.isoformat())
                for text, when in texts]
    for start in range(0, len(rows), 256):
        memory.index(rows[start:start + 256])
    return memory


def chat_log(n: int, seed: int = 0, days: int = 60) -> list[tuple[str, datetime]]:
    """n chit-chat exchanges spread over `days` days before NOW, oldest first."""
    rng = random.Random(seed)
    stamps = sorted(NOW - timedelta(days=days * rng.random()) for _ in range(n))
    return [(chitchat(rng), when) for when in stamps]


def test_index_equals_brute_force_on_a_near_duplicate_store(tmp_path, embedder):
    """Thousands of near-identical exchanges plus a few facts: the index returns the true
    nearest neighbours (what brute-force cosine over the same embeddings returns), also after
    deletions and after the daemon restarts (the copy is read back from Chroma)."""
    log = chat_log(3000, seed=1)
    facts = ["My uncle lives in Aarhus.", "I drive a Peugeot 208.", "My sister is called Inga.",
             "I'm allergic to peanuts.", "I play five-a-side football every Sunday evening."]
    for n, fact in enumerate(facts):
        log.insert(300 + n * 500, (f"{{{{user}}}}: {fact}\n{{{{char}}}}: Good to know!", log[300 + n * 500][1]))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    gone = memory.store.memory_ids()[::7]
    memory.delete(gone)
    rows = memory.store.memories_by_ids(memory.store.memory_ids())
    truth_ids = np.array([row["id"] for row in rows])
    said = np.asarray(embedder.embed([embedded_text(row["text"]) for row in rows]), dtype=np.float32)
    whole = np.asarray(embedder.embed([whole_text(row["text"]) for row in rows]), dtype=np.float32)
    rng = random.Random(2)
    queries = ["Where does my uncle live?", "What car do I have?", "What's my sister's name?",
               "What am I allergic to?", "What do I do on Sunday nights?"]
    queries += [embedded_text(chitchat(rng)) for _ in range(45)]
    vectors = np.asarray(embedder.embed(queries), dtype=np.float32)

    def overlap(memory: LongTermMemory) -> float:
        """Share of the index's top 10 that are in the true top 10 (exact duplicates tie: any of
        them will do, so a found memory counts when it is as similar as the true 10th)."""
        shared = total = 0
        for query in vectors:
            closer = np.maximum(said @ query, whole @ query)     # a memory is as near as its closer view
            similarity = dict(zip(truth_ids.tolist(), closer.tolist()))
            tenth = sorted(similarity.values(), reverse=True)[9]
            found = [i for i, _ in memory.vectors().nearest(query, companion, 10)]
            shared += sum(similarity.get(i, -2.0) >= tenth - 1e-5 for i in found)
            total += 10
        return shared / total

    assert overlap(memory) >= 0.99
    memory.close()
    reopened = open_memory(tmp_path, embedder, store=memory.store)
    assert reopened.vectors().count == len(rows)
    assert overlap(reopened) >= 0.99
    found = reopened.recall(companion, "Where does my uncle live?", 5, now=NOW)
    assert "Aarhus" in found[0].text


def test_a_fact_among_thousands_of_chitchat_is_recalled_by_words_and_meaning(tmp_path, embedder):
    log = chat_log(1500, seed=3)
    log.insert(200, ("{{user}}: The dentist appointment is on Friday at 4.\n{{char}}: I'll remind you!", log[200][1]))
    log.insert(900, ("{{user}}: I play five-a-side football every Sunday evening.\n{{char}}: Sounds fun!", log[900][1]))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    assert "dentist" in memory.recall(companion, "When do I see the dentist?", 5, now=NOW)[0].text
    found = memory.recall(companion, "What keeps me busy on Sunday nights?", 5, now=NOW)
    assert any("football" in m.text for m in found)


def test_an_exchange_is_embedded_by_what_was_said_and_as_a_whole():
    exchange = "{{user}}: What did you do today?\n{{char}}: I repotted my lemon tree on the balcony."
    assert views(exchange) == ("What did you do today?",
                               "What did you do today?\nI repotted my lemon tree on the balcony.")
    assert views("A note without speakers.") == ("A note without speakers.", "A note without speakers.")


def test_what_the_companion_said_is_recalled_by_meaning(tmp_path, embedder):
    """A fact in the companion's line only, asked in other words (no word in common), among
    chit-chat: found through the whole exchange's vector."""
    log = chat_log(600, seed=5)
    log.insert(300, ("{{user}}: I was out all morning.\n{{char}}: I repotted my lemon tree on the balcony.",
                     log[300][1]))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    found = memory.recall(companion, "Which citrus plant got a new container?", 5, now=NOW)
    assert any("lemon tree" in m.text for m in found)
    memory.close()


def test_a_stock_reply_is_not_what_finds_an_exchange():
    """The whole view of an exchange whose reply was given stock_reply times or more is not looked at."""
    axes = np.eye(4, dtype=np.float32)
    said, whole = 0.1 * axes[1] + np.sqrt(0.99) * axes[0], axes[1]
    table = VectorTable()
    stock = reply_of("{{user}}: Tell me a joke.\n{{char}}: I love  music. What are you listening to?")
    assert stock == "i love music. what are you listening to?"
    assert reply_of("A note without speakers.") is None
    row = np.concatenate([said, whole])              # near the query by its whole view only
    table.put([1, 2, 3], [row] * 3, [1] * 3, [0.0] * 3, [stock, stock, "a reply given once"])
    query = whole
    assert table.similarities([1, 2, 3], query, stock_reply=0) == pytest.approx({1: 1.0, 2: 1.0, 3: 1.0})
    assert table.similarities([1, 2, 3], query, stock_reply=2) == pytest.approx({1: 0.1, 2: 0.1, 3: 1.0})
    assert [i for i, _ in table.nearest(query, 1, 3, stock_reply=2)] == [3, 1, 2]
    table.remove([2])                                # given once now: its whole view counts again
    assert table.similarities([1], query, stock_reply=2) == pytest.approx({1: 1.0})
    table.put([3], [row], [1], [0.0], [stock])       # replaced: its reply counted anew
    assert table.similarities([1, 3], query, stock_reply=2) == pytest.approx({1: 0.1, 3: 0.1})
    assert table.stock_replies([1, 3, 7], 2) == {1, 3} and table.stock_replies([1, 3], 0) == set()


def test_a_fact_is_not_crowded_out_by_a_stock_reply_on_its_topic(tmp_path, embedder):
    """A model's stock reply that names the topic ("I love music. What are you listening to?"),
    given after many unrelated lines, does not bring those exchanges before the fact."""
    log = chat_log(300, seed=6)
    asks = ["Tell me a joke.", "Say something funny.", "So, tell me a joke.", "Tell me something nice.",
            "Say something funny lol", "Cheer me up.", "Make me laugh.", "Any jokes?"]
    for n, line in enumerate(asks):
        log.append((f"{{{{user}}}}: {line}\n{{{{char}}}}: I love music. What are you listening to?",
                    NOW - timedelta(days=n + 1)))
    log.append(("{{user}}: I've played the cello since I was nine.\n{{char}}: Wow, that's a long time!",
                NOW - timedelta(days=30)))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    found = memory.recall(companion, "What musical instrument do I know?", 5, now=NOW)
    assert any("cello" in m.text for m in found), [m.text for m in found]
    # a prompt tells such an exchange without its stock reply, and the others whole
    joke = next(m for m in memory.recall(companion, "Tell me a joke.", 5, now=NOW) if "joke" in m.text)
    assert joke.stock_reply and joke.told == "{{user}}: Tell me a joke."
    assert all(m.told == m.text for m in found if "cello" in m.text)
    memory.close()


def test_the_newer_version_of_a_fact_comes_first(tmp_path, embedder):
    log = chat_log(400, seed=4)
    log.append(("{{user}}: I work as a nurse at the city hospital.\n{{char}}: That's a demanding job!",
                NOW - timedelta(days=40)))
    log.append(("{{user}}: I quit the hospital, I'm working as a carpenter now.\n{{char}}: What a change!",
                NOW - timedelta(days=5)))
    log.append(("{{user}}: I drive an old red Volvo.\n{{char}}: Reliable cars!", NOW - timedelta(days=50)))
    log.append(("{{user}}: I sold the Volvo and bought a blue Tesla.\n{{char}}: Congratulations!",
                NOW - timedelta(days=2)))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    found = memory.recall(companion, "What is my job these days?", 5, now=NOW)
    assert "carpenter" in found[0].text
    found = memory.recall(companion, "What car do I drive?", 5, now=NOW)
    assert "Tesla" in found[0].text


def test_a_question_asked_five_times_does_not_crowd_out_the_answer(tmp_path, embedder):
    log = chat_log(300, seed=5)
    log.append(("{{user}}: My uncle Rasmus lives in Aarhus, by the harbour.\n{{char}}: Aarhus is lovely!",
                NOW - timedelta(days=30)))
    for n, reply in enumerate(["Hmm, I'm not sure you told me.", "I see.", "I don't remember, sorry.",
                               "Good question!", "I see."]):
        log.append((f"{{{{user}}}}: Which town does my uncle live in?\n{{{{char}}}}: {reply}",
                    NOW - timedelta(days=20 - n * 3)))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    found = memory.recall(companion, "Which town does my uncle live in?", 5, now=NOW)
    assert "Aarhus" in found[0].text
    assert sum("Which town" in m.text for m in found) <= 1    # the repeats are one memory


def test_yesterday_narrows_recall_to_yesterdays_memories(tmp_path, embedder):
    yesterday = NOW - timedelta(days=1)
    log = chat_log(200, seed=6, days=20)
    log.append(("{{user}}: I went kayaking on the river today.\n{{char}}: How peaceful!",
                yesterday.replace(hour=17)))
    log.append(("{{user}}: I went ice skating today.\n{{char}}: Did you fall?", NOW - timedelta(days=4)))
    log.append(("{{user}}: I went to a jazz concert tonight.\n{{char}}: Lovely!", NOW - timedelta(days=9)))
    memory = build(tmp_path, embedder, log)
    companion = memory.store.active_companion_id()
    found = memory.recall(companion, "What did I do yesterday?", 5, now=NOW)
    assert found.window is not None and found.window.phrase == "yesterday"
    assert any("kayaking" in m.text for m in found)
    day = yesterday.date().isoformat()
    assert all(m.created_at.startswith(day) for m in found)
    assert memory.recall(companion, "What did I do?", 5, now=NOW).window is None


def test_questions_and_words():
    assert is_question("Which town does my uncle live in?")
    assert is_question("Hey. Where is it?") is False or True   # a greeting and a question: either is fine
    assert not is_question("I got a dog! Isn't that great?")
    assert not is_question("My sister is called Inga.")
    assert asked_only("{{user}}: Which town does my uncle live in?\n{{char}}: I see.")
    assert not asked_only("{{user}}: Which town does my uncle live in?\n{{char}}: He lives in Aarhus, you said.")
    assert not asked_only("{{user}}: My uncle lives in Aarhus.\n{{char}}: Nice!")
    assert not asked_only("{{user}} likes tea.")
    assert lexical_query("What's my dog's name?") == '"dog" OR "name"'
    assert lexical_query("What did I do yesterday?", {"yesterday"}) is None


@pytest.mark.parametrize("question", ["When do I see the dentist?", "what about my appointment"])
def test_search_api_finds_by_words(client, question):
    for text in ["The dentist appointment is on Friday at 4.", "I like green tea.", "My cat is called Tom."]:
        assert client.post("/api/memories", json={"text": text}).status_code == 201
    body = client.get("/api/memories", query_string={"q": question}).get_json()
    assert "dentist" in body["items"][0]["text"] and body["window"] is None


def test_memories_keep_a_given_date_and_refuse_a_bad_one(client):
    made = client.post("/api/memories", json={"text": "I moved to Oslo.", "created_at": "2026-03-05T10:00:00+01:00"})
    assert made.status_code == 201 and made.get_json()["created_at"] == "2026-03-05T09:00:00+00:00"
    bad = client.post("/api/memories", json={"text": "x", "created_at": "last Tuesday"})
    assert bad.status_code == 400 and "created_at" in bad.get_json()["error"]["message"]
    body = client.get("/api/memories", query_string={"q": "Where did I move in March?"}).get_json()
    assert body["window"]["phrase"].lower().endswith("march") and "Oslo" in body["items"][0]["text"]


def test_a_fact_told_once_then_200_turns_of_chitchat_is_recalled_in_the_reply(services):
    """Through the conversation path: the history imported with its dates, then asked."""
    rng = random.Random(7)
    items = [(False, "My uncle Rasmus lives in Aarhus, by the harbour.", (NOW - timedelta(days=30)).isoformat()),
             (True, "Aarhus sounds lovely!", (NOW - timedelta(days=30)).isoformat())]
    for n in range(200):
        user, reply = embedded_text(chitchat(rng)), rng.choice(REPLIES)
        when = (NOW - timedelta(days=29) + timedelta(hours=3 * n)).isoformat()
        items += [(False, user, when), (True, reply, when)]
    chat_id = services.companions.active_chat_id()
    services.messages.import_messages(chat_id, items)
    companion = services.store.active_companion_id()
    services.store.update_companion(companion, {"long_term_mem": 5})
    reply = services.turns.send(chat_id, "Which town does my uncle live in?")
    assert any("Aarhus" in m.text for m in reply.memories)


def test_every_message_is_in_the_prompt_or_recallable(services):
    """When the token budget keeps fewer messages than short_term_mem, those left out of the
    window can be recalled (before, they were in neither)."""
    store = services.store
    companion = store.active_companion_id()
    chat_id = store.active_chat_id(companion)
    store.update_companion(companion, {"short_term_mem": 10, "long_term_mem": 3})
    filler = " ".join(["The garden was quiet and the afternoon went slowly by."] * 25)   # ~300 tokens
    items = []
    for n in range(5):
        items += [(False, f"{filler} ({n})"), (True, "I see.")]
    items[2] = (False, "My locker code at the gym is 4711.")
    services.messages.import_messages(chat_id, items)
    reply = services.turns.send(chat_id, "What is my locker code at the gym?")
    assert any("4711" in m.text for m in reply.memories)


def test_imported_chats_keep_their_dates(client):
    messages = [{"ai": False, "text": "I moved to Oslo.", "date": "2026-03-05T10:00:00+01:00"},
                {"ai": True, "text": "Oslo is lovely!", "date": 1772701260000},
                {"ai": False, "text": "No date here."}]
    assert client.post("/api/import/messagesJson", json={"messages": messages}).status_code == 200
    stored = client.get("/api/chats").get_json()["items"][0]
    rows = client.get(f"/api/chats/{stored['id']}/messages").get_json()["items"]
    assert [r["date"] for r in rows[-3:-1]] == ["2026-03-05T09:00:00+00:00", "2026-03-05T09:01:00+00:00"]
    memory = next(m for m in client.get("/api/memories").get_json()["items"] if "Oslo" in m["text"])
    assert memory["created_at"] == "2026-03-05T09:00:00+00:00"
    bad = client.post("/api/import/messagesJson", json={"messages": [{"ai": False, "text": "x", "date": "soon"}]})
    assert bad.status_code == 400
    jsonl = "\n".join([
        '{"user_name": "Ada", "character_name": "Mira", "create_date": "2026-01-02@10h00m00s"}',
        '{"name": "Ada", "is_user": true, "send_date": "January 2, 2026 10:04am", "mes": "I adopted a dog."}',
        '{"name": "Mira", "is_user": false, "send_date": "January 2, 2026 10:05am", "mes": "What is its name?"}'])
    made = client.post("/api/chats/import", data=jsonl.encode(), content_type="application/x-ndjson")
    assert made.status_code == 201, made.get_json()
    rows = client.get(f"/api/chats/{made.get_json()['id']}/messages").get_json()["items"]
    assert [r["date"] for r in rows] == ["2026-01-02T10:04:00+00:00", "2026-01-02T10:05:00+00:00"]
    memory = next(m for m in client.get("/api/memories").get_json()["items"] if "dog" in m["text"])
    assert memory["created_at"] == "2026-01-02T10:04:00+00:00"


def test_a_time_told_later_is_found_by_its_name(tmp_path, embedder):
    """'What did I do on Tuesday?' finds what was said on Tuesday, and what was told later about
    Tuesday, but not a 'Tuesday' said weeks before (that was another Tuesday)."""
    tuesday = datetime(2026, 11, 24, 18, 0, tzinfo=timezone.utc)          # NOW is Friday the 27th
    log = chat_log(200, seed=8, days=20)
    log.append(("{{user}}: On Tuesday I went kayaking on the river.\n{{char}}: Lovely!", tuesday + timedelta(days=2)))
    log.append(("{{user}}: On Tuesday I went to a jazz concert.\n{{char}}: Nice!", tuesday - timedelta(days=21)))
    log.append(("{{user}}: I repaired my bike today.\n{{char}}: Handy!", tuesday))
    memory = build(tmp_path, embedder, log)
    found = memory.recall(memory.store.active_companion_id(), "What did I do on Tuesday?", 5, now=NOW)
    texts = " ".join(m.text for m in found)
    assert found.window.phrase == "on Tuesday" and "kayaking" in texts and "bike" in texts
    assert "jazz" not in texts


def test_ranks_count_distinct_texts_and_put_questions_last():
    from companion.config import MemorySettings
    from companion.memory.ranking import Rankings, distinct_ranks

    text = {1: "good night", 2: "good night", 3: "where does my uncle live?", 4: "my uncle lives in aarhus",
            5: "hello"}
    asked = {1: False, 2: False, 3: True, 4: False, 5: False}
    assert distinct_ranks([3, 1, 2, 4, 5], text, asked) == {1: 1, 2: 1, 4: 2, 5: 3, 3: 4}
    ranks = Rankings(meaning={4: 1, 5: 2}, words={4: 1}, rarity={5: 1, 4: 2})
    options = MemorySettings(relevance_weight=1.0, lexical_weight=0.5, rarity_weight=1.0, fusion_k=20)
    assert ranks.fused(4, options) == pytest.approx((1 / 21 + 0.5 / 21 + 1 / 22) / (2.5 / 21))
    assert Rankings({7: 1}, {}, {7: 1}).fused(7, options) == pytest.approx(1.0)   # no word ranking: 1.0 at best
