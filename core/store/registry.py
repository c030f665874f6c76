"""The SQLite registry (artifacts/lab.db, WAL): one row per run and one per model variant.

The run folder is the source of truth; the registry indexes it for listing and comparison.

Under concurrency (many browser sessions reading, several worker processes writing):
- the database is in WAL mode, so readers never wait for a writer and never take the write lock: reads run as
  plain statements (`query()`, `connect(write=False)`), writes as one `BEGIN IMMEDIATE` transaction each;
- the schema (this module's tables and those other modules add with `add_schema`) is created once per process
  and database file, not on every connection;
- every connection has a busy timeout, and taking the write lock is retried with jittered exponential backoff
  for up to `WRITE_PATIENCE` seconds (a worker raises it), so a busy moment delays a write and never loses it.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from .paths import db_path

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, status TEXT NOT NULL,
    dataset TEXT, backbone TEXT, mode TEXT, weights TEXT, image_size INTEGER,
    test_accuracy REAL, macro_f1 REAL, train_seconds REAL, preset TEXT, error TEXT,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS variants (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL, technique TEXT,
    test_accuracy REAL, size_bytes INTEGER, gzip_bytes INTEGER, latency_ms_p50 REAL, latency_ms_p95 REAL,
    agreement REAL, sparsity REAL, data TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (run_id, name)
);
"""
RUN_COLUMNS = ("status", "dataset", "backbone", "mode", "weights", "image_size", "test_accuracy", "macro_f1",
               "train_seconds", "preset", "error")
VARIANT_COLUMNS = ("technique", "test_accuracy", "size_bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p95",
                   "agreement", "sparsity")


BUSY_TIMEOUT = 5.0          # seconds SQLite itself waits for a lock, per attempt
WRITE_PATIENCE = 120.0      # seconds a write keeps retrying for the write lock before it gives up
READ_PATIENCE = 30.0        # the same for reads (in WAL mode they only wait while a crashed writer is recovered)
_schemas: list[tuple[str, str]] = [("registry", SCHEMA)]
_ready: dict[tuple, int] = {}          # (database file) -> how many of _schemas it is known to have
_ready_lock = threading.Lock()


def add_schema(name: str, sql: str) -> None:
    """Register more tables (CREATE ... IF NOT EXISTS statements); created once per process and database."""
    with _ready_lock:
        if all(n != name for n, _ in _schemas):
            _schemas.append((name, sql))


def is_busy(e: BaseException) -> bool:
    """Whether an error is SQLite's "database is locked" / "busy" (worth retrying), not a real failure."""
    if not isinstance(e, sqlite3.OperationalError):
        return False
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


def retry(fn: Callable[[], T], patience: float | None = None) -> T:
    """fn() until it does not fail with a busy database, sleeping with jittered exponential backoff (10 ms, doubling,
    at most 1 s) for up to `patience` seconds (WRITE_PATIENCE by default); then the last error is raised."""
    patience = WRITE_PATIENCE if patience is None else patience
    end = time.monotonic() + patience
    delay = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if not is_busy(e) or time.monotonic() >= end:
                raise
        time.sleep(min(delay * random.uniform(0.5, 1.5), max(0.0, end - time.monotonic())))
        delay = min(delay * 2, 1.0)


def _file_key(path) -> tuple:
    try:
        s = os.stat(path)
        return (str(path), s.st_dev, s.st_ino)
    except OSError:
        return (str(path), None, None)


def _open(path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    return con


def _ensure_schema(con: sqlite3.Connection, path) -> None:
    """WAL mode and every registered table, once per process and database file (CREATE IF NOT EXISTS: several
    processes doing it at once is harmless)."""
    key = _file_key(path)
    with _ready_lock:
        todo = list(_schemas)
    if key[1] is not None and _ready.get(key) == len(todo):
        return
    retry(lambda: con.execute("PRAGMA journal_mode=WAL").fetchone())   # persistent: stored in the file

    def create() -> None:
        con.execute("BEGIN IMMEDIATE")
        try:
            for _, sql in todo:
                for stmt in sql.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    retry(create)
    _ready[_file_key(path)] = len(todo)


def _forget(path) -> None:
    """The database lost its tables (replaced by another file): create them again on the next connection."""
    _ready.pop(_file_key(path), None)


def _missing_table(e: BaseException) -> bool:
    return isinstance(e, sqlite3.OperationalError) and "no such table" in str(e)


@contextmanager
def connect(write: bool = True, patience: float | None = None) -> Iterator[sqlite3.Connection]:
    """A connection to the registry (WAL mode, busy timeout, schema present).

    write=True (the default): one IMMEDIATE transaction, the write lock taken at the start (retried with backoff
    for up to `patience` seconds), committed on success, rolled back on error. write=False: plain autocommit
    reads that never take the write lock (each statement sees one consistent snapshot).
    """
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path)
    try:
        _ensure_schema(con, path)
        if not write:
            yield con
            return
        retry(lambda: con.execute("BEGIN IMMEDIATE"), patience)
        try:
            yield con
            retry(lambda: con.execute("COMMIT"), patience)     # a busy COMMIT keeps its transaction: try again
        except BaseException as e:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if _missing_table(e):
                _forget(path)
            raise
    finally:
        con.close()


def query(sql: str, args: tuple | list = (), one: bool = False):
    """Rows of one read statement (or the first row, or None, with one=True), retried while the database is busy.
    Never takes the write lock."""
    def go():
        with connect(write=False) as con:
            cur = con.execute(sql, tuple(args))
            return cur.fetchone() if one else cur.fetchall()
    try:
        return retry(go, READ_PATIENCE)
    except sqlite3.OperationalError as e:
        if not _missing_table(e):
            raise
        _forget(db_path())
        return retry(go, READ_PATIENCE)


def write(fn: Callable[[sqlite3.Connection], T], patience: float | None = None) -> T:
    """fn(con) inside one write transaction; the whole transaction is retried while the database is busy, for up
    to `patience` seconds in all (WRITE_PATIENCE by default)."""
    patience = WRITE_PATIENCE if patience is None else patience
    end = time.monotonic() + patience

    def go():
        with connect(patience=max(0.0, end - time.monotonic())) as con:
            return fn(con)
    return retry(go, patience)


def upsert_run(run_id: str, summary: dict | None = None, **fields) -> None:
    """Insert or update a run row; `fields` are columns from RUN_COLUMNS, `summary` is merged JSON."""
    from .runs import check_run_id
    check_run_id(run_id)
    bad = set(fields) - set(RUN_COLUMNS)
    if bad:
        raise ValueError(f"unknown run columns {bad}")
    now = time.time()

    def go(con: sqlite3.Connection) -> None:
        row = con.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
        merged = {**(json.loads(row["summary"]) if row else {}), **(summary or {})}
        if row is None:
            con.execute("INSERT INTO runs (id, created, updated, status, summary) VALUES (?,?,?,?,?)",
                        (run_id, now, now, fields.get("status", "created"), json.dumps(merged)))
        sets = ", ".join(f"{k}=?" for k in fields)
        con.execute(f"UPDATE runs SET updated=?, summary=?{', ' + sets if sets else ''} WHERE id=?",
                    (now, json.dumps(merged), *fields.values(), run_id))
    write(go)


def _row(r: sqlite3.Row) -> dict:
    d = dict(r)
    for k in ("summary", "data"):
        if k in d:
            d[k] = json.loads(d[k] or "{}")
    return d


def get_run(run_id: str) -> dict | None:
    r = query("SELECT * FROM runs WHERE id=?", (run_id,), one=True)
    return _row(r) if r else None


def list_runs(limit: int = 200) -> list[dict]:
    return [_row(r) for r in query("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,))]


def replace_variants(run_id: str, variants: list[dict]) -> None:
    """Store one row per variant (all of a run's rows are replaced at once, in one transaction)."""
    from .runs import check_run_id
    check_run_id(run_id)
    rows = [(run_id, v["name"], *(v.get(k) for k in VARIANT_COLUMNS), json.dumps(v, default=float)) for v in variants]

    def go(con: sqlite3.Connection) -> None:
        con.execute("DELETE FROM variants WHERE run_id=?", (run_id,))
        con.executemany(f"INSERT INTO variants (run_id, name, {', '.join(VARIANT_COLUMNS)}, data) "
                        f"VALUES (?, ?, {', '.join('?' * len(VARIANT_COLUMNS))}, ?)", rows)
    write(go)


def list_variants(run_id: str) -> list[dict]:
    return [_row(r) for r in query("SELECT * FROM variants WHERE run_id=? ORDER BY rowid", (run_id,))]


def delete_run_rows(run_id: str) -> None:
    """Remove a run's row and its variant rows (in one transaction)."""
    from .runs import check_run_id
    check_run_id(run_id)

    def go(con) -> None:
        con.execute("DELETE FROM variants WHERE run_id=?", (run_id,))
        con.execute("DELETE FROM runs WHERE id=?", (run_id,))
    write(go)


# ---------------------------------------------------------------- how a run is called


def run_name(row: dict | None) -> str | None:
    """The name a user gave a run (Train's "Run name", `--name`, or a rename), or None."""
    s = (row or {}).get("summary") or {}
    if "name" in s:                                    # a rename (None: the name was cleared)
        return s["name"] or None
    return ((s.get("config") or {}).get("name")) or None


def generated_label(row: dict) -> str:
    """A label for a run without a name: dataset, backbone, input size and when it was created."""
    from .uploads import display_name
    s = row.get("summary") or {}
    cfg = s.get("config") or {}
    size = row.get("image_size") or cfg.get("image_size")
    when = time.strftime("%d %b %H:%M", time.localtime(row["created"])) if row.get("created") else ""
    parts = [display_name(row.get("dataset") or cfg.get("dataset")), row.get("backbone") or cfg.get("backbone") or "?",
             f"{size} px" if size else "", when]
    return " · ".join(p for p in parts if p)


def run_label(row: dict) -> str:
    """Every run's readable label: its name, else a generated one (dataset · backbone · size · time)."""
    return run_name(row) or generated_label(row)
