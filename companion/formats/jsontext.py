"""JSON text as clients and files send it, read safely (pure).

json.loads takes a lone surrogate escape (``"\\ud800"``, what JavaScript writes for half an emoji)
as a character that is no character: SQLite, the tokenizers and UTF-8 refuse it later, far from
the input. Here each becomes U+FFFD at once, as bad UTF-8 in a form or query already does; a
surrogate pair stays the character it means.
"""

from __future__ import annotations

import json
import re
from typing import Any

# a \\ (kept, so that a \u after it is text), a surrogate pair (kept), or a lone surrogate escape
_ESCAPE = r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
_ESCAPE_TEXT = re.compile(_ESCAPE)
_ESCAPE_BYTES = re.compile(_ESCAPE.encode())


def mend_surrogates(data: str | bytes) -> str | bytes:
    """JSON text with each lone surrogate escape made \\ufffd (the rest as it was)."""
    if isinstance(data, bytes):
        return data if b"\\u" not in data else _ESCAPE_BYTES.sub(
            lambda m: m[0] if len(m[0]) != 6 else b"\\ufffd", data)
    return data if "\\u" not in data else _ESCAPE_TEXT.sub(lambda m: m[0] if len(m[0]) != 6 else "\\ufffd", data)


def loads(data: str | bytes) -> Any:
    """json.loads, its lone surrogates mended; JSON that nests too deeply for the parser is a
    JSONDecodeError like any other JSON it cannot read (not a RecursionError)."""
    text = mend_surrogates(data)
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("the JSON nests too deeply", text if isinstance(text, str) else "", 0) from None
