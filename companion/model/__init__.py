"""Generation: the backends and what keeps them fast.

Owns the backend interface (generation.py: Generator, the request and its params), the registry
(backends.py: one class per [model] backend), the local GGUF backend (local.py, llama-cpp-python)
and the OpenAI-compatible one (remote.py), a chat's KV states on disk (kv_states.py), the one lock
generation holds (lock.py), GGUF metadata (gguf.py), model pulls (pull.py), loading in the
background (loading.py) and the model service (service.py: model files, run-time changes).

May import: the foundations, formats, store. Never memory, characters, chat, voice, api or services:
what serves turns is reached through the Serving protocol of generation.py.
"""
