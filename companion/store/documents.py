"""Documents a companion remembers (their chunks are memories)."""

from __future__ import annotations

from companion.store.connection import Connection
from companion.store.times import now_iso


class DocumentQueries(Connection):
    """Documents a companion remembers (their chunks are memories): the queries."""

    def add_document(self, companion_id: int, name: str, media_type: str, size: int) -> int:
        return self._insert("documents", {"companion_id": companion_id, "name": name, "media_type": media_type,
                                          "size": size, "chunks": 0, "created_at": now_iso()})

    def set_document_chunks(self, document_id: int, chunks: int) -> None:
        self._update("documents", document_id, {"chunks": chunks})

    def get_document(self, document_id: int) -> dict | None:
        return self._one("select * from documents where id = ?", [document_id])

    def list_documents(self, companion_id: int, limit: int, offset: int) -> list[dict]:
        return self._query("select * from documents where companion_id = ? order by id desc limit ? offset ?",
                           [companion_id, limit, offset])

    def count_documents(self, companion_id: int) -> int:
        return self._row("select count(*) as n from documents where companion_id = ?", [companion_id])["n"]

    def document_memory_ids(self, document_id: int) -> list[int]:
        return [r["id"] for r in self._query("select id from memories where document_id = ?", [document_id])]

    def delete_document(self, document_id: int) -> None:
        with self.transaction() as db:
            db.execute("delete from memories where document_id = ?", [document_id])
            db.execute("delete from documents where id = ?", [document_id])
