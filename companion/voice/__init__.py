"""Voice, offline and optional: replies spoken and speech heard.

Owns the engines (engines.py: Piper speaking, faster-whisper listening, installed as extras),
audio encoding (audio.py), a reply spoken sentence by sentence (narration.py) and the voice service
(service.py: the speech cache on disk, companions' voices).

May import: the foundations, formats, store, model (model/local.py only: the usable CPUs).
Never chat, api or services.
"""
