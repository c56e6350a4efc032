"""One SQLite file through sqlite-utils: the connection, transactions, change events, helpers."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from companion.errors import full_disk_refused
from companion.events import Publish, no_events
from companion.store.migrations import migrate


def conditions(*pairs: tuple[str, Any]) -> tuple[str, list]:
    """A where clause of the conditions whose value is given (not None, 0 or empty), and their values."""
    used = [(condition, value) for condition, value in pairs if value]
    return " and ".join(c for c, _ in used) or "1", [v for _, v in used]


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


class Connection:
    """One connection behind one lock; the queries of each concept build on it (store/__init__.py)."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """Open (creating, migrating and seeding) the database; read_only opens an existing one
        as it is, changing nothing (FileNotFoundError when there is none)."""
        self.path = Path(path)
        if read_only:
            if not self.path.is_file():
                raise FileNotFoundError(f"no database at {self.path}")
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        conn.create_function("casefold", 1, _casefold, deterministic=True)   # case-insensitive search, any script
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._depth = 0
        self.on_change: Publish = no_events   # told of each committed change (the live events)
        self._pending: list[tuple[str, dict]] = []
        self.db.execute("PRAGMA busy_timeout=5000")
        if read_only:
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        migrate(self.db)
        self._seed()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One atomic write: everything inside commits together or not at all."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self.db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                with full_disk_refused():
                    yield self.db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._rollback()
                raise
            self._depth -= 1
            if outer:
                try:
                    with full_disk_refused():
                        self.db.execute("COMMIT")
                except BaseException:
                    self._rollback()     # a COMMIT that failed (a full disk) may leave the transaction open
                    raise
                pending, self._pending = self._pending, []
                for kind, data in pending:
                    self.on_change(kind, data)

    def _rollback(self) -> None:
        """End the transaction, unless SQLite ended it already (it may, on SQLITE_FULL)."""
        self._pending.clear()
        if self.db.conn.in_transaction:
            self.db.execute("ROLLBACK")

    def _changed(self, kind: str, data: dict) -> None:
        """Tell on_change of a change once its transaction commits (at once outside one)."""
        with self._lock:
            if self._depth:
                self._pending.append((kind, data))
                return
        self.on_change(kind, data)

    def _insert(self, table: str, row: dict) -> int:
        """Insert one row with plain SQL (sqlite-utils' helpers commit on their own)."""
        columns = ", ".join(f"[{c}]" for c in row)
        marks = ", ".join("?" * len(row))
        with self.transaction() as db:
            cursor = db.execute(f"insert into [{table}] ({columns}) values ({marks})", list(row.values()))
            assert cursor.lastrowid is not None   # an insert's: the new row's
            return int(cursor.lastrowid)

    def _update(self, table: str, row_id: int | str, values: dict, pk: str = "id") -> None:
        assignments = ", ".join(f"[{c}] = ?" for c in values)
        with self.transaction() as db:
            db.execute(f"update [{table}] set {assignments} where [{pk}] = ?", [*values.values(), row_id])

    def _query(self, sql: str, params: Any = ()) -> list[dict]:
        with self._lock:
            return list(self.db.query(sql, params))

    def _by_ids(self, select: str, ids: list[int]) -> list[dict]:
        """select ... where id in ids, in chunks that stay under SQLite's variable limit."""
        out: list[dict] = []
        for start in range(0, len(ids), 900):
            part = list(ids[start:start + 900])
            out += self._query(f"{select} where id in ({','.join('?' * len(part))})", part)
        return out

    def _one(self, sql: str, params: Any = ()) -> dict | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _row(self, sql: str, params: Any = ()) -> dict:
        """The row of a query that always returns one: an aggregate (count(*), exists(...)), a PRAGMA."""
        return self._query(sql, params)[0]

    def get_state(self, key: str) -> str | None:
        row = self._one("select value from state where key = ?", [key])
        return row["value"] if row else None

    def set_state(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute("insert into state (key, value) values (?, ?) "
                       "on conflict(key) do update set value = excluded.value", [key, str(value)])

    def count(self, table: str) -> int:
        with self._lock:
            return self.db[table].count

    def integrity_check(self) -> str:
        """SQLite's own check: 'ok' when the file is sound."""
        return self._row("PRAGMA integrity_check")["integrity_check"]

    def _seed(self) -> None:
        """The rows a new database starts with (store/companions.py adds them)."""
