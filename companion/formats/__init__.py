"""Pure formats: bytes and text in, typed values out, and back.

Owns character cards (cards.py: PNG and JSON, V1/V2/V3), chat files (chat_files.py: JSONL, CSV,
text), documents to remember (documents.py: text, Markdown, HTML, PDF), images (images.py),
dates (dates.py) and JSON text (jsontext.py).

May import: the standard library, Pillow and pypdf, companion.errors and each other. Nothing
stateful: no store, no model, no services (tests/test_layout.py checks it).
"""
