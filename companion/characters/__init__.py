"""Who speaks: companions, the user's personas, presets, lorebooks, avatars.

Owns the companion service (companions.py: companions, personas, cards in and out), generation
presets (presets.py), lorebooks (lorebooks.py) and lore activation (lore.py, pure: it imports
nothing stateful), avatars on disk (avatars.py).

May import: the foundations, formats, store, model, memory (a companion's memories go with it).
Never chat, voice, api or services.
"""
