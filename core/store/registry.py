"""The SQLite registry (artifacts/lab.db, WAL): one row per run and one per model variant.

The run folder is the source of truth; the registry indexes it for listing and comparison.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator

from .paths import db_path

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


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A connection in WAL mode; commits on success, rolls back on error."""
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.row_factory = sqlite3.Row
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")
        con.executescript(SCHEMA)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def upsert_run(run_id: str, summary: dict | None = None, **fields) -> None:
    """Insert or update a run row; `fields` are columns from RUN_COLUMNS, `summary` is merged JSON."""
    from .runs import check_run_id
    check_run_id(run_id)
    bad = set(fields) - set(RUN_COLUMNS)
    if bad:
        raise ValueError(f"unknown run columns {bad}")
    now = time.time()
    with connect() as con:
        row = con.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
        merged = {**(json.loads(row["summary"]) if row else {}), **(summary or {})}
        if row is None:
            con.execute("INSERT INTO runs (id, created, updated, status, summary) VALUES (?,?,?,?,?)",
                        (run_id, now, now, fields.get("status", "created"), json.dumps(merged)))
        sets = ", ".join(f"{k}=?" for k in fields)
        con.execute(f"UPDATE runs SET updated=?, summary=?{', ' + sets if sets else ''} WHERE id=?",
                    (now, json.dumps(merged), *fields.values(), run_id))


def _row(r: sqlite3.Row) -> dict:
    d = dict(r)
    for k in ("summary", "data"):
        if k in d:
            d[k] = json.loads(d[k] or "{}")
    return d


def get_run(run_id: str) -> dict | None:
    with connect() as con:
        r = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    return _row(r) if r else None


def list_runs(limit: int = 200) -> list[dict]:
    with connect() as con:
        rows = con.execute("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
    return [_row(r) for r in rows]


def replace_variants(run_id: str, variants: list[dict]) -> None:
    """Store one row per variant (all of a run's rows are replaced at once, in one transaction)."""
    from .runs import check_run_id
    check_run_id(run_id)
    with connect() as con:
        con.execute("DELETE FROM variants WHERE run_id=?", (run_id,))
        for v in variants:
            con.execute(f"INSERT INTO variants (run_id, name, {', '.join(VARIANT_COLUMNS)}, data) "
                        f"VALUES (?, ?, {', '.join('?' * len(VARIANT_COLUMNS))}, ?)",
                        (run_id, v["name"], *(v.get(k) for k in VARIANT_COLUMNS), json.dumps(v, default=float)))


def list_variants(run_id: str) -> list[dict]:
    with connect() as con:
        rows = con.execute("SELECT * FROM variants WHERE run_id=? ORDER BY rowid", (run_id,)).fetchall()
    return [_row(r) for r in rows]


def delete_run_rows(run_id: str) -> None:
    """Remove a run's row and its variant rows (in one transaction)."""
    from .runs import check_run_id
    check_run_id(run_id)
    with connect() as con:
        con.execute("DELETE FROM variants WHERE run_id=?", (run_id,))
        con.execute("DELETE FROM runs WHERE id=?", (run_id,))


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
