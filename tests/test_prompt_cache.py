"""The prompt reuses the KV cache: turn N+1's tokens start with turn N's up to its volatile part."""

from __future__ import annotations

from companion.chat.prompt import PromptInput, Recalled, Turn, build_messages, window_start
from companion.model.generation import GenerationRequest


def test_next_turn_starts_with_this_turns_stable_prefix(generator):
    short_term = 12
    history: list[Turn] = [Turn(True, "Welcome, {{user}}!")]
    previous_prefix: list[int] | None = None
    previous_start = None
    checked = drops = 0
    for n in range(14):
        start = window_start(len(history), short_term)
        p = PromptInput(char="Mira", user="Sam", persona="{{char}} is a librarian.",
                        history=history[start:], newest=f"Question number {n}?",
                        memories=[Recalled(f"{{{{user}}}} said fact {n}", "2026-01-01T00:00:00+00:00")])
        prompt, _ = generator.render(GenerationRequest(messages=build_messages(p), char="Mira", user="Sam"))
        tokens = generator._llama.tokenize(prompt.encode(), add_bos=True, special=True)
        if previous_prefix is not None:
            if start == previous_start:
                assert tokens[:len(previous_prefix)] == previous_prefix, f"turn {n} broke the prefix"
                checked += 1
            else:
                drops += 1
        volatile_at = prompt.rindex("<|im_start|>system\n")     # the volatile block comes last but one
        previous_prefix = generator._llama.tokenize(prompt[:volatile_at].encode(), add_bos=True, special=True)
        previous_start = start
        history += [Turn(False, f"Question number {n}?"), Turn(True, f"Answer number {n}.")]
    assert checked >= 6 and drops >= 2
