"""The conversation: a turn from the newest message to the reply, and what surrounds it.

Owns turns (turns.py: one turn, its prompt, its KV state, what it remembers), the reply streams
(streams.py), messages and swipes (messages.py), chats and their files (chats.py), group chats
(groups.py), summaries written while idle (summaries.py), a companion that writes first
(initiative.py), a turn's inputs gathered from the store (turn_input.py) and the prompt built from
explicit inputs (prompt.py, pure: it imports nothing stateful).

May import: the foundations (errors, events, config), formats, store, model, memory, characters.
Never api, services or voice.
"""
