"""Documents into memory: plain text, Markdown, HTML and PDF to text, then overlapping chunks."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from typing import Callable

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_CHUNKS = 5000
TEXT_TYPES = {"text/plain", "text/markdown", "text/html", "application/pdf"}


class DocumentError(ValueError):
    """A document that cannot be read; status is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _TextOfHTML(HTMLParser):
    SKIP = {"script", "style", "head", "noscript", "template"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The visible text of an HTML page."""
    parser = _TextOfHTML()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def media_type_of(data: bytes, filename: str = "", declared: str = "") -> str:
    """What a document is, by its content first, then its name and declared type."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    name = filename.lower()
    head = data[:512].lstrip().lower()
    if name.endswith((".html", ".htm")) or declared.startswith("text/html") or head.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if name.endswith((".md", ".markdown")) or declared.startswith("text/markdown"):
        return "text/markdown"
    return "text/plain"


def extract_text(data: bytes, filename: str = "", declared: str = "") -> tuple[str, str]:
    """(text, media type) of a document; DocumentError (413/415/400) when it cannot be used."""
    if not data:
        raise DocumentError("the document is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"the document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB", 413)
    media_type = media_type_of(data, filename, declared)
    if media_type == "application/pdf":
        text = _pdf_text(data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DocumentError("only UTF-8 text, Markdown, HTML and PDF documents can be read", 415) from None
        if "\x00" in text:
            raise DocumentError("this looks like a binary file: only text, Markdown, HTML and PDF", 415)
        if media_type == "text/html":
            text = html_text(text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    if not text:
        raise DocumentError("no text found in the document")
    return text, media_type


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"the PDF could not be read: {exc}") from None


def chunk_text(text: str, offsets: Callable[[str], list[tuple[int, int]]], size: int = 200,
               overlap: int = 40) -> list[str]:
    """Split text into chunks of `size` tokens overlapping by `overlap` tokens.

    `offsets` gives each token's (start, end) character span, from the embedder's tokenizer,
    so chunks are cut from the original text.
    """
    spans = offsets(text)
    if not spans:
        return [text] if text.strip() else []
    step = max(1, size - overlap)
    chunks = []
    for start in range(0, len(spans), step):
        window = spans[start:start + size]
        chunk = text[window[0][0]:window[-1][1]].strip()
        if chunk:
            chunks.append(chunk)
        if start + size >= len(spans):
            break
    if len(chunks) > MAX_CHUNKS:
        raise DocumentError(f"the document is too long (more than {MAX_CHUNKS} chunks)", 413)
    return chunks
