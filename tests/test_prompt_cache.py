"""The prompt reuses the KV cache: turn N+1's prompt is turn N's with its reply appended."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from test_turns import recorded_requests

from companion.chat.prompt import PromptInput, Recalled, Turn, build_messages, note_text, window_start
from companion.model.generation import GenerationRequest


def test_next_turn_starts_with_this_turns_prompt_and_reply(generator):
    """Each turn's note is kept with its message: while the window's start stays put, the next
    turn's tokens start with this turn's whole prompt (its note and the newest message too) and
    the reply; only when a block drops does the prefix change."""
    short_term = 12
    history: list[Turn] = [Turn(True, "Welcome, {{user}}!")]
    previous_prefix: list[int] | None = None
    previous_start = None
    checked = drops = 0
    day = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    for n in range(14):
        start = window_start(len(history), short_term)
        p = PromptInput(char="Mira", user="Sam", persona="{{char}} is a librarian.",
                        history=history[start:], newest=f"Question number {n}?", now=day + timedelta(minutes=n),
                        memories=[Recalled(f"{{{{user}}}} said fact {n}", "2026-01-01T00:00:00+00:00")])
        prompt, _ = generator.render(GenerationRequest(messages=build_messages(p), char="Mira", user="Sam"))
        tokens = generator._llama.tokenize(prompt.encode(), add_bos=True, special=True)
        if previous_prefix is not None:
            if start == previous_start:
                assert tokens[:len(previous_prefix)] == previous_prefix, f"turn {n} broke the prefix"
                checked += 1
            else:
                drops += 1
        reply = f"Answer number {n}."
        previous_prefix = generator._llama.tokenize(prompt.encode() + reply.encode(), add_bos=True, special=True)
        previous_start = start
        history += [Turn(False, f"Question number {n}?", note=note_text(p)), Turn(True, reply)]
    assert checked >= 6 and drops >= 2


def test_a_second_turn_starts_with_the_first_turns_prompt_and_reply(services):
    """End to end with the real model: what the second turn gives the model starts with what the
    first gave it followed by the reply it generated."""
    turns = services.turns
    chat_id = services.companions.active_chat_id()
    services.memory.add(services.companions.active_companion_id(), "{{user}} keeps three bees named after planets.",
                        "custom")
    real = turns.generator
    with recorded_requests(turns) as requests:
        first = turns.send(chat_id, "Do you remember my bees?", {"max_tokens": 8})
        turns.send(chat_id, "They are buzzing today.", {"max_tokens": 8})
    prompts = [real.render(request)[0] for request in requests]
    assert first.memories
    assert prompts[1].startswith(prompts[0] + first.message["text"])
    tokens = [real.tokenize(p, add_special=True) for p in prompts]
    evaluated = len(tokens[1]) - len(tokens[0])     # what the second turn adds after the first's prompt
    assert tokens[1][:len(tokens[0])] == tokens[0] and evaluated < len(tokens[0]) // 2


def test_after_a_turn_settles_the_next_prompt_reads_only_what_is_new(services):
    """Once the model is free after a turn, its reply is evaluated again in batches (settled): the
    tokens the model keeps reach past the first prompt into the reply, and the second turn's
    prompt starts with all of them."""
    turns = services.turns
    chat_id = services.companions.active_chat_id()
    real = turns.generator
    with recorded_requests(turns) as requests:
        turns.send(chat_id, "Tell me about the sea.", {"max_tokens": 8})
        assert turns.states.unsettled and turns.states.settle_now() and not turns.states.unsettled
        settled = real.cached_tokens()
        turns.send(chat_id, "And the mountains?", {"max_tokens": 8})
    prompts = [real.prompt_token_ids(request) for request in requests]
    assert len(settled) > len(prompts[0])                  # the reply's tokens are kept
    assert prompts[1][:len(settled)] == settled            # and the next prompt starts with them


def test_the_rehearsed_start_is_the_start_of_the_next_prompt(services):
    """TurnService.rehearse builds the next turn's prompt before its message exists: its tokens
    are the start of the prompt the next turn gives the model, also when the window moves on."""
    from companion.model.kv_states import common_prefix

    turns = services.turns
    services.store.update_companion(services.companions.active_companion_id(), {"short_term_mem": 4})
    chat_id = services.companions.active_chat_id()
    rehearsed = []
    with recorded_requests(turns) as requests:
        for line in ["Hello there!", "I planted tomatoes today.", "The cat sat on them.", "Now they are flat.",
                     "Should I plant again?"]:
            rehearsed.append(turns.rehearse(chat_id))
            turns.send(chat_id, line, {"max_tokens": 8})
    prompts = [turns.generator.prompt_token_ids(request) for request in requests]
    moved = 0
    for n in range(len(prompts)):           # the first: the greeting alone
        coming = rehearsed[n]
        assert coming and prompts[n][:len(coming)] == coming, n
        assert len(prompts[n]) - len(coming) < 120, n     # the note and the message are all that is new
        moved += n > 0 and common_prefix(prompts[n - 1], coming) < len(prompts[n - 1]) - 1
    assert moved >= 1                      # the window moved on at least once, and was rehearsed too


def test_a_warm_turn_with_nothing_to_recall_reads_only_its_message(services):
    """The time a note in the window told minutes ago is not told again, and a turn that recalls
    nothing then has no note at all: after the model read the next prompt's start while idle, the
    turn reads only the new message and the reply's cue."""
    from companion.model.kv_states import common_prefix

    turns = services.turns
    chat_id = services.companions.active_chat_id()
    real = turns.generator
    with recorded_requests(turns) as requests:
        turns.send(chat_id, "Tell me about the sea.", {"max_tokens": 8})
        turns.states.settle_now()
        ready = real.cached_tokens()
        turns.send(chat_id, "And the mountains?", {"max_tokens": 8})
    first, second = (request.messages for request in requests)
    assert "Current date and time" in first[-2]["content"]
    assert [m["role"] for m in second[-2:]] == ["assistant", "user"]     # no note before the message
    prompt = real.prompt_token_ids(requests[1])
    message = real.tokenize("<|im_start|>user\nAnd the mountains?<|im_end|>\n<|im_start|>assistant\n")
    assert len(prompt) - common_prefix(ready, prompt) <= len(message)


def test_after_a_turn_with_memories_the_rehearsed_start_holds_for_a_turn_without_any(services):
    """The last turn showed a memory, so the rehearsal's stand-in note tells one; the next turn
    recalls nothing and tells no time, so it has no note: the rehearsed start is still the start
    of its prompt, and no token of a note it does not have."""
    turns = services.turns
    companion = services.companions.active_companion_id()
    chat_id = services.companions.active_chat_id()
    services.memory.add(companion, "{{user}} keeps three bees named after planets.", "custom")
    with recorded_requests(turns) as requests:
        first = turns.send(chat_id, "Do you remember my bees?", {"max_tokens": 8})
        coming = turns.rehearse(chat_id)
        second = turns.send(chat_id, "Good.", {"max_tokens": 8})
    assert first.memories and not second.memories
    assert requests[1].messages[-2]["role"] == "assistant"          # no note before the message
    prompt = turns.generator.prompt_token_ids(requests[1])
    assert coming and prompt[:len(coming)] == coming
