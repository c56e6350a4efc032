"""Backup and restore of a data dir: one zip with a consistent database snapshot and the avatars.

A backup is safe while the daemon runs: the database is copied through SQLite's online backup
API (a read transaction: a consistent snapshot, and the daemon keeps writing meanwhile). The
Chroma index is not in the backup: it is derived from the ``memories`` table, and a restore
deletes it so the next start re-indexes every memory (``LongTermMemory.reconcile``).

Zip layout::

    manifest.json      format, version, created_at, counts, embedder, files
    companion.db       the database snapshot (rollback journal mode: one self-contained file)
    avatars/<name>     the avatar files (flat)
    config.toml        the config file, when one was given (never restored by itself)
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from companion import __version__
from companion.config import Settings
from companion.lockfile import DataDirBusy, DataDirLock
from companion.memory.embedder import embedder_name

FORMAT = "companion-backup"
VERSION = 1
DB_NAME = "companion.db"
MANIFEST = "manifest.json"
CONFIG_NAME = "config.toml"
AVATARS = "avatars"
COUNTED = ("companions", "messages", "memories")
REQUIRED_TABLES = ("companions", "users", "chats", "messages", "memories", "state")
DB_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why (for the command line)."""


def embedder_path(settings: Settings) -> str:
    """The folder of the embedding model this data dir indexes with (without loading it)."""
    if settings.memory.embedder:
        return str(Path(settings.memory.embedder).expanduser())
    from companion.memory.embedder import bundled_embedder

    path = bundled_embedder()
    return str(path) if path else ""


def _counts(conn: sqlite3.Connection) -> dict:
    return {table: conn.execute(f"select count(*) from [{table}]").fetchone()[0] for table in COUNTED}


def _referenced_avatars(conn: sqlite3.Connection) -> set[str]:
    """The avatar files the database names: companions' and (since m011) personas'."""
    tables = ["companions"] + (["users"] if any(c[1] == "avatar" for c in conn.execute("pragma table_info(users)"))
                               else [])
    rows = [row for table in tables
            for row in conn.execute(f"select avatar from {table} where avatar is not null and avatar != ''")]
    return {Path(name).name for (name,) in rows}


def _snapshot(db_path: Path, target: Path) -> None:
    """Copy the live database into target through the online backup API."""
    # mode=rw: never create a database where there is none; the daemon's WAL is read as usual
    source = sqlite3.connect(f"file:{quote(str(db_path))}?mode=rw", uri=True, timeout=30)
    try:
        source.execute("PRAGMA busy_timeout=30000")
        dest = sqlite3.connect(str(target))
        try:
            source.backup(dest)  # pages=-1: the whole database in one step, one consistent read
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
            dest.commit()
        finally:
            dest.close()
    finally:
        source.close()


def create_backup(settings: Settings, path: str | os.PathLike, config_path: str | os.PathLike | None = None,
                  force: bool = False) -> dict:
    """Write a backup zip of the data dir to path; returns its manifest.

    Safe while a daemon holds the data dir: it reads the database through SQLite only and never
    opens the Chroma store. Refuses to overwrite an existing file unless force.
    """
    data = Path(settings.data_dir)
    db_path = data / DB_NAME
    target = Path(path).expanduser().absolute()
    if target.exists() and not force:
        raise BackupError(f"{target} already exists (use --force to overwrite it)")
    if target.exists() and target.is_dir():
        raise BackupError(f"{target} is a folder")
    if not db_path.is_file():
        raise BackupError(f"no database in {data}: nothing to back up")
    config = Path(config_path).expanduser() if config_path else None
    if config is not None and not config.is_file():
        raise BackupError(f"config file not found: {config}")
    target.parent.mkdir(parents=True, exist_ok=True)
    avatars = data / AVATARS
    with tempfile.TemporaryDirectory(prefix=".companion-backup-", dir=target.parent) as tmp:
        snapshot = Path(tmp) / DB_NAME
        # An avatar change between the snapshot and the copy of the avatars (the daemon writes
        # the new file, points the row at it, then deletes the old one) can leave the snapshot
        # pointing at a file that is gone: take the snapshot again then.
        for _ in range(5):
            snapshot.unlink(missing_ok=True)
            try:
                _snapshot(db_path, snapshot)
            except sqlite3.Error as exc:
                raise BackupError(f"cannot read the database {db_path}: {exc}") from None
            conn = sqlite3.connect(str(snapshot))
            try:
                check = conn.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the database {db_path} fails its integrity check: {check}")
                counts = _counts(conn)
                referenced = _referenced_avatars(conn)
            except sqlite3.Error as exc:
                raise BackupError(f"{db_path} is not a companion database: {exc}") from None
            finally:
                conn.close()
            copied = Path(tmp) / AVATARS
            shutil.rmtree(copied, ignore_errors=True)
            copied.mkdir()
            if avatars.is_dir():
                for item in sorted(avatars.iterdir()):
                    if item.is_file() and not item.is_symlink():
                        try:
                            shutil.copyfile(item, copied / item.name)
                        except FileNotFoundError:  # removed meanwhile
                            pass
            if referenced <= {p.name for p in copied.iterdir()}:
                break
        else:
            raise BackupError("the avatars kept changing while the backup was taken; try again")
        avatar_files = sorted(p.name for p in copied.iterdir())
        embedder = embedder_path(settings)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "companion_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data_dir": str(data),
            "counts": {**counts, "avatars": len(avatar_files)},
            # the name the memory index records (Embedder.name: the folder's name) and the folder
            "embedder": embedder_name(embedder),
            "embedder_path": embedder,
            "database": DB_NAME,
            "avatars": [f"{AVATARS}/{name}" for name in avatar_files],
            "config": {"name": CONFIG_NAME, "source": str(config.absolute())} if config else None,
        }
        partial = Path(tmp) / "backup.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            zf.write(snapshot, DB_NAME)
            for name in avatar_files:
                # PNGs are already compressed
                zf.write(copied / name, f"{AVATARS}/{name}", compress_type=zipfile.ZIP_STORED)
            if config is not None:
                zf.write(config, CONFIG_NAME)
        os.replace(partial, target)  # the zip appears whole or not at all
    return manifest


# --- restore ---------------------------------------------------------------------------------


def _safe_member(name: str) -> bool:
    """A relative path with no '..', no drive, no backslashes: stays inside the folder."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return False
    parts = PurePosixPath(name).parts
    return bool(parts) and not any(part in ("..", "") for part in parts)


def read_manifest(zf: zipfile.ZipFile, origin: str) -> dict:
    """Check a backup zip's member names and manifest; returns the manifest."""
    names = zf.namelist()
    unsafe = [n for n in names if not _safe_member(n)]
    if unsafe:
        raise BackupError(f"{origin}: refusing a zip with unsafe member names: {', '.join(map(repr, unsafe[:5]))}")
    if MANIFEST not in names or DB_NAME not in names:
        raise BackupError(f"{origin} is not a companion backup (no {MANIFEST} and {DB_NAME})")
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{origin}: {MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{origin} is not a companion backup (its manifest says otherwise)")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise BackupError(f"{origin}: backup format version {manifest.get('version')!r} is newer than "
                          f"this companion understands ({VERSION}); update companion")
    for name in names:
        if name in (MANIFEST, DB_NAME, CONFIG_NAME) or name.endswith("/"):
            continue
        parts = PurePosixPath(name).parts
        if len(parts) != 2 or parts[0] != AVATARS:
            raise BackupError(f"{origin}: unexpected member {name!r} in a companion backup")
    return manifest


def check_database(path: Path, origin: str) -> dict:
    """Integrity check and schema check of a restored database; returns its counts."""
    from companion.store.migrations import migrations
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{origin}: cannot open its database: {exc}") from None
    try:
        check = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            raise BackupError(f"{origin}: its database fails the integrity check: {'; '.join(check[:5])}")
        tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise BackupError(f"{origin}: its database is not a companion database (no {', '.join(missing)})")
        if "_sqlite_migrations" in tables:
            applied = {row[0] for row in conn.execute(
                "select name from _sqlite_migrations where migration_set = ?", [migrations.name])}
            known = {m.name for m in migrations._migrations}
            newer = sorted(applied - known)
            if newer:
                raise BackupError(f"{origin}: made by a newer companion (schema {', '.join(newer)}); "
                                  "update companion first")
        return _counts(conn)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{origin}: its database is damaged or not SQLite: {exc}") from None
    finally:
        conn.close()


def has_data(data: Path) -> bool:
    """Whether a data dir holds a database or avatars that a restore would replace."""
    avatars = data / AVATARS
    return (data / DB_NAME).exists() or (avatars.is_dir() and any(avatars.iterdir()))


def restore_backup(settings: Settings, path: str | os.PathLike, force: bool = False) -> dict:
    """Restore a backup zip into the data dir; returns what was restored.

    Holds the data-dir lock throughout (refuses while a daemon holds it). Checks everything
    before it touches the data dir: member names, manifest, the database's integrity. Then
    swaps the database and the avatars in by renames within the data dir, and deletes the
    memory index (chroma/) so the next start re-indexes every memory from the database.
    """
    source = Path(path).expanduser()
    origin = str(source)
    if not source.is_file():
        raise BackupError(f"{origin}: no such file")
    if not zipfile.is_zipfile(source):
        raise BackupError(f"{origin} is not a zip file (not a companion backup)")
    data = Path(settings.data_dir)
    try:
        lock = DataDirLock(data).acquire()
    except DataDirBusy as exc:
        raise BackupError(f"{exc}: a daemon is running on it; stop it before restoring") from None
    try:
        if has_data(data) and not force:
            raise BackupError(f"{data} already holds data; use --force to replace it with the backup")
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data))
        try:
            try:
                with zipfile.ZipFile(source) as zf:
                    manifest = read_manifest(zf, origin)
                    needed = sum(info.file_size for info in zf.infolist())
                    free = shutil.disk_usage(data).free
                    if needed > free:
                        raise BackupError(f"{origin}: needs {needed} bytes, {data} has {free} free")
                    with zf.open(DB_NAME) as src, (staging / DB_NAME).open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                        dst.flush()
                        os.fsync(dst.fileno())
                    (staging / AVATARS).mkdir()
                    avatar_names = []
                    for info in zf.infolist():
                        parts = PurePosixPath(info.filename).parts
                        if len(parts) == 2 and parts[0] == AVATARS and not info.is_dir():
                            with zf.open(info) as src, (staging / AVATARS / parts[1]).open("wb") as dst:
                                shutil.copyfileobj(src, dst, 1 << 20)
                            avatar_names.append(parts[1])
                    has_config = CONFIG_NAME in zf.namelist()
            except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
                raise BackupError(f"{origin}: damaged zip: {exc}") from None
            counts = check_database(staging / DB_NAME, origin)
            promised = {k: v for k, v in (manifest.get("counts") or {}).items() if k in COUNTED}
            if promised and promised != counts:
                raise BackupError(f"{origin}: its database does not match its manifest "
                                  f"(manifest {promised}, database {counts})")
            replaced = has_data(data)
            _swap_in(data, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        warnings = _drop_remote_index(settings)
    finally:
        lock.release()
    return {
        "data_dir": str(data),
        "created_at": manifest.get("created_at"),
        "companion_version": manifest.get("companion_version"),
        "embedder": manifest.get("embedder"),
        "counts": {**counts, "avatars": len(avatar_names)},
        "replaced": replaced,
        "config_in_backup": has_config,
        "warnings": warnings,
    }


def _drop_remote_index(settings: Settings) -> list[str]:
    """With [memory] chroma_url, the index lives in a Chroma server: drop its collection too.

    Reconcile compares ids only, and the restored rows reuse ids the server may hold for other
    texts; an empty collection makes the next start index every restored memory afresh.
    """
    url = settings.memory.chroma_url
    if not url:
        return []
    from companion.memory.index import collection_name, open_chroma

    try:
        chroma_path = Path(settings.data_dir) / "chroma"
        name = collection_name(chroma_path, url)
        client = open_chroma(chroma_path, url)
        if name in [getattr(c, "name", c) for c in client.list_collections()]:
            client.delete_collection(name)
    except Exception as exc:
        return [f"could not empty the memory index in the Chroma server at {url} ({type(exc).__name__}: {exc}); "
                "run `companion reindex` before `companion serve`"]
    return []


def _swap_in(data: Path, staging: Path) -> None:
    """Move the old database, avatars and index aside, the staged ones in; undo on failure."""
    old = staging / "old"
    old.mkdir()
    moves: list[tuple[Path, Path]] = []  # (from, to) done so far, undone in reverse on failure

    def move(src: Path, dst: Path) -> None:
        os.replace(src, dst)
        moves.append((src, dst))

    try:
        # the old -wal/-shm must go with the old database: a stale WAL next to the new file
        # would be replayed into it
        for suffix in ("", *DB_SIDE_FILES):
            current = data / (DB_NAME + suffix)
            if current.exists():
                move(current, old / (DB_NAME + suffix))
        if (data / AVATARS).exists():
            move(data / AVATARS, old / AVATARS)
        if (data / "chroma").exists():
            move(data / "chroma", old / "chroma")
        move(staging / AVATARS, data / AVATARS)
        move(staging / DB_NAME, data / DB_NAME)  # last: the database is the truth
    except BaseException:
        for src, dst in reversed(moves):
            try:
                os.replace(dst, src)
            except OSError:
                pass
        raise
    # fsync the folder so the renames survive a power cut
    try:
        fd = os.open(data, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
