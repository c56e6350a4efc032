"""The memory API on real SQLite, Chroma and embedder: browse, search, edit, delete, documents, context."""

from __future__ import annotations

import io

import pytest


def counts(client) -> dict:
    return client.get("/api/status").get_json()["counts"]


def test_add_list_search_edit_delete(client, services):
    for text in ("{{user}} plays the cello.", "{{user}}'s sister is called Inga.", "It rained on Sunday."):
        response = client.post("/api/memories", json={"text": text})
        assert response.status_code == 201 and response.get_json()["source"] == "custom"
    listing = client.get("/api/memories").get_json()
    assert listing["total"] == 3 and listing["items"][0]["text"] == "It rained on Sunday."
    found = client.get("/api/memories?q=what instrument do I play&limit=2").get_json()
    assert found["items"][0]["text"] == "{{user}} plays the cello." and found["items"][0]["score"] > 0
    assert found["items"][0]["display_text"] == "User plays the cello."   # as the page shows it
    assert len(found["items"]) == 2
    memory_id = found["items"][0]["id"]
    edited = client.patch(f"/api/memories/{memory_id}", json={"text": "{{user}} plays the trumpet."})
    assert edited.status_code == 200
    assert edited.get_json()["display_text"] == "User plays the trumpet."
    again = client.get("/api/memories?q=trumpet&limit=1").get_json()["items"][0]
    assert again["id"] == memory_id and "trumpet" in again["text"]
    assert client.delete(f"/api/memories/{memory_id}").status_code == 204
    assert counts(client)["memories"] == 2 and counts(client)["indexed_memories"] == 2
    assert client.delete("/api/memories").get_json() == {"deleted": 2}
    assert counts(client)["memories"] == 0 and counts(client)["indexed_memories"] == 0


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/api/memories", {"text": ""}, 400), ("POST", "/api/memories", {"text": 5}, 400),
    ("POST", "/api/memories", {"text": "x", "companion_id": 999}, 404),
    ("PATCH", "/api/memories/999", {"text": "x"}, 404), ("DELETE", "/api/memories/999", None, 404),
    ("GET", "/api/memories?limit=0", None, 400), ("GET", "/api/memories?companion_id=abc", None, 400),
    ("DELETE", "/api/memories?companion_id=999", None, 404), ("GET", "/api/messages/999/context", None, 404),
])
def test_memory_api_bad_input(client, method, path, body, status):
    client.post("/api/memories", json={"text": "keep me"})
    before = counts(client)
    response = client.open(path, method=method, json=body)
    assert response.status_code == status and response.get_json()["error"]["message"]
    assert counts(client) == before


def test_a_reply_records_the_memories_it_used(client):
    client.post("/api/addData", json={"text": "{{user}}'s favourite food is ramen."})
    client.post("/api/change/shortTermMemory", json={"limit": 2})
    reply = client.post("/api/prompt", json={"prompt": "What is my favourite food?", "max_tokens": 8}).get_json()
    assert reply["memories"] and "ramen" in reply["memories"][0]["text"]
    context = client.get(f"/api/messages/{reply['id']}/context").get_json()
    assert context["message_id"] == reply["id"]
    assert [m["id"] for m in context["memories"]] == [m["id"] for m in reply["memories"]]
    assert context["memories"][0]["text"] == "User's favourite food is ramen."
    assert context["lore"] == []


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a line of text (built by hand, offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


@pytest.mark.parametrize("name, data, media_type, expected", [
    ("notes.txt", ("The lighthouse keeper feeds the gulls at dawn. " * 60).encode(), "text/plain", "gulls"),
    ("notes.md", b"# Garden\n\nThe **roses** bloom in June.\n", "text/markdown", "roses"),
    ("page.html", b"<html><head><script>var secret=1;</script></head><body><p>Bees make honey.</p></body></html>",
     "text/html", "Bees make honey."),
    ("doc.pdf", minimal_pdf("The treaty was signed in Oslo."), "application/pdf", "Oslo"),
])
def test_documents_come_and_go_together(client, name, data, media_type, expected):
    response = client.post("/api/memories/documents", data={"file": (io.BytesIO(data), name)},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_data(as_text=True)
    document = response.get_json()
    assert document["media_type"] == media_type and document["chunks"] >= 1
    memories = client.get("/api/memories?limit=200").get_json()["items"]
    chunks = [m for m in memories if m["document_id"] == document["id"]]
    assert len(chunks) == document["chunks"] and any(expected in m["text"] for m in chunks)
    assert all("secret" not in m["text"] for m in chunks)
    if name == "notes.txt":
        assert document["chunks"] > 1
        assert chunks[0]["text"][-30:] in chunks[1]["text"] or chunks[1]["text"][-30:] in chunks[0]["text"]
    assert counts(client)["indexed_memories"] == counts(client)["memories"]
    assert client.get("/api/memories/documents").get_json()["total"] == 1
    assert client.delete(f"/api/memories/documents/{document['id']}").status_code == 204
    assert counts(client)["memories"] == 0 and counts(client)["indexed_memories"] == 0
    assert client.get("/api/memories/documents").get_json()["total"] == 0


@pytest.mark.parametrize("data, status", [
    (b"", 400), (b"\x00\x01\x02binary\xff\xfe", 415), (b"%PDF-1.4 broken", 400), (b"   \n  ", 400),
    (b"x" * (11 * 1024 * 1024), 413),
])
def test_bad_documents_store_nothing(client, data, status):
    response = client.post("/api/memories/documents?name=upload.bin", data=data,
                           content_type="application/octet-stream")
    assert response.status_code == status, response.get_data(as_text=True)
    assert counts(client)["memories"] == 0
    assert client.get("/api/memories/documents").get_json()["total"] == 0
    assert client.delete("/api/memories/documents/999").status_code == 404
