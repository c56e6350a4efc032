"""Thin HTTP adapters over the services, one blueprint per API dialect.

Owns the blueprints (compat: the AI Companion API; rest, companions, chats, groups, presets,
memories, lorebooks, events, voice: ours; openai, kobold, llamacpp, ollama), the request body
models (schemas.py), what a model cannot check (validate.py), streams as server-sent events
(sse.py), the generated OpenAPI document (openapi.py) and the request checks (security.py: host,
origin, API key).

A handler parses, calls one service method through services(), and shapes the response.
May import: the foundations, formats, characters, chat, voice, names and services. Never the store
or the model (a row's type under TYPE_CHECKING at most): tests/test_layout.py checks it.
"""

from __future__ import annotations

from flask import current_app

from companion.services import Services


def services() -> Services:
    """The app's services (built once by create_app)."""
    return current_app.extensions["companion"]
