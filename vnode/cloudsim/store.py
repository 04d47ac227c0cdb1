"""Durable state in SQLite: instances (with their addresses and billing), idempotency tokens, the
world's topology and the clock, so that ``kill -9`` and a restart lose nothing acknowledged.

The live state stays in memory; the store is written, not read, while serving. Writes are
batched: mutations mark instances dirty, and ``flush`` writes every dirty one in one
transaction. The server flushes before it answers a mutating call (group commit: concurrent
calls share one transaction), and every few hundred milliseconds for lifecycle progress.
WAL with ``synchronous=NORMAL`` keeps a commit safe when the process dies (not when the
machine does, which a simulator need not survive).
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator

import msgspec

from vnode.cloudsim import model

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances
    (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, deleted INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, id TEXT NOT NULL, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(model.Instance).decode


class Store:
    def __init__(self, path: pathlib.Path | str) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._dirty: dict[str, model.Instance] = {}
        self._tokens: list[tuple[str, str, str]] = []
        self._meta: dict[str, str] = {}

    # -- reading (at start) -----------------------------------------------------------------

    def instances(self, *, deleted: bool = False) -> Iterator[model.Instance]:
        rows = self.db.execute("SELECT data FROM instances WHERE deleted = ? ORDER BY seq", (int(deleted),))
        for (data,) in rows:
            yield _decode(data)

    def instance(self, instance_id: str) -> model.Instance | None:
        row = self.db.execute("SELECT data FROM instances WHERE id = ?", (instance_id,)).fetchone()
        return _decode(row[0]) if row else None

    def tokens(self) -> Iterator[tuple[str, str, str]]:
        yield from self.db.execute("SELECT token, id, fingerprint FROM tokens")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def deleted_totals(self) -> tuple[int, int]:
        """(count of deleted instances, the highest sequence number ever used)."""
        count = self.db.execute("SELECT COUNT(*) FROM instances WHERE deleted = 1").fetchone()[0]
        top = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM instances").fetchone()[0]
        return int(count), int(top)

    # -- writing ----------------------------------------------------------------------------

    def mark(self, inst: model.Instance) -> None:
        self._dirty[inst.id] = inst

    def add_token(self, token: str, instance_id: str, fingerprint: str) -> None:
        self._tokens.append((token, instance_id, fingerprint))

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    @property
    def pending(self) -> bool:
        return bool(self._dirty or self._tokens or self._meta)

    def flush(self) -> int:
        """Write everything marked since the last flush in one transaction; returns rows written."""
        if not self.pending:
            return 0
        dirty, tokens, meta = self._dirty, self._tokens, self._meta
        self._dirty, self._tokens, self._meta = {}, [], {}
        rows = [(i.id, i.seq, int(i.deleted_at is not None), _encode(i)) for i in dirty.values()]
        self.db.execute("BEGIN")
        try:
            if rows:
                self.db.executemany(
                    "INSERT OR REPLACE INTO instances (id, seq, deleted, data) VALUES (?, ?, ?, ?)", rows
                )
            if tokens:
                self.db.executemany("INSERT OR REPLACE INTO tokens (token, id, fingerprint) VALUES (?, ?, ?)", tokens)
            if meta:
                self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return len(rows) + len(tokens) + len(meta)

    def wipe(self) -> None:
        """Forget every instance and token (admin reset); the world and clock stay."""
        self._dirty.clear()
        self._tokens.clear()
        self.db.execute("DELETE FROM instances")
        self.db.execute("DELETE FROM tokens")

    def close(self) -> None:
        self.flush()
        self.db.close()
