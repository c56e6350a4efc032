"""The llama-server comparison's cheap parts (bench/peer.py): SillyTavern's prompt and the phase plan."""

from __future__ import annotations

from bench import peer

CARD = {"name": "Sera", "description": "{{char}} is a healer who looks after {{user}}.", "personality": "kind",
        "scenario": "", "system_prompt": "", "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello!\nShe smiles.",
        "first_mes": "Welcome back."}


def words(text: str) -> int:
    return len(text.split())


def test_the_prompt_is_laid_out_as_sillytavern_sends_it():
    history = [(True, "Welcome back."), (False, "How are you, {{char}}?")]
    prompt, dropped = peer.sillytavern_prompt(CARD, history, 1000, words)
    assert dropped == 0
    assert prompt == (
        "<|im_start|>system\nWrite Sera's next reply in a fictional chat between Sera and User.\n"
        "Sera is a healer who looks after User.\nSera's personality: kind<|im_end|>\n"
        "<|im_start|>user\nUser: Hi<|im_end|>\n<|im_start|>assistant\nSera: Hello!\nShe smiles.<|im_end|>\n"
        "<|im_start|>assistant\nSera: Welcome back.<|im_end|>\n"
        "<|im_start|>user\nUser: How are you, Sera?<|im_end|>\n"
        "<|im_start|>assistant\nSera:")
    # the card's own system prompt replaces SillyTavern's default
    assert peer.story_string({**CARD, "system_prompt": "Be {{char}}."}).startswith("Be Sera.\nSera is a healer")


def test_the_history_is_fitted_newest_first_one_message_at_a_time():
    history = [(i % 2 == 1, f"message number {i} here") for i in range(12)]
    full, _ = peer.sillytavern_prompt(CARD, history, 10_000, words)
    budget = words(full) - 5           # one message (5 words with its name and markers) too many
    fitted, dropped = peer.sillytavern_prompt(CARD, history, budget, words)
    assert dropped == 1 and "message number 0 " not in fitted and "message number 1 " in fitted
    assert words(fitted) <= budget and fitted.endswith("message number 11 here<|im_end|>\n<|im_start|>assistant\nSera:")
    # a longer history leaves the window at its oldest end every turn: the prompt after the card changes
    longer, dropped_more = peer.sillytavern_prompt(CARD, history + [(False, "one more line")], budget, words)
    assert dropped_more > dropped and "message number 1 " not in longer


def test_the_phase_plan():
    plan = peer.phase_plan(6)
    assert [(p["phase"], p["chat"], p["after"]) for p in plan] == [
        ("A1", "A", "start"), ("B1", "B", "new_chat"), ("A2", "A", "switch"), ("A3", "A", "restart"),
        ("B2", "B", "switch_after_restart")]
    assert all(p["turns"] == 6 for p in plan)


def test_the_summary_ratios_and_targets():
    plan = peer.phase_plan(2)
    turns = []
    for step in plan:
        for i in range(2):
            for arm, scale in (("daemon", 1.0), ("llama_server", 2.0)):
                ttft = (0.2 if i else 1.0) * scale
                turns.append({"arm": arm, "phase": step["phase"], "turn": i, "ttft_s": ttft, "reply_s": ttft + 1,
                              "tokens": 10, "decode_tps": 50.0, "memories_used": int(step["phase"] == "A1")})
    summary = peer.summarize(turns, plan)
    assert summary["ratios"]["warm_ttft"] == 0.5 and summary["ratios"]["decode"] == 1.0
    assert summary["by_kind"]["warm_no_memory"]["daemon"]["turns"] == 4      # A1's turn 1 recalled one
    assert summary["by_kind"]["warm_no_memory"]["llama_server"]["turns"] == 4
    assert summary["by_kind"]["after_restart"]["daemon"]["turns"] == 1
    assert summary["targets"]["met"]["warm_ttft_at_most"] and not summary["targets"]["met"]["restart_ttft_at_most"]
