"""Migrations: a database migrated before the stage tables became one, under the migrations' old
names (two of them numbered 0002), is brought to `stage_runs` with its rows and nothing applied twice."""

from __future__ import annotations

from importlib import resources

import asyncpg

from patchtwin.core import store

#: The versions as released before the renumbering, and the file each one is now.
RELEASED = {
    "0001_init": "0001_init",
    "0002_observe_trace": "0002_observe_trace",
    "0002_patch_runs": "0003_patch_runs",
    "0003_reports": "0004_reports",
    "0004_fencing": "0005_fencing",
}


def sql(name: str) -> str:
    return resources.files("patchtwin.core.migrations").joinpath(f"{name}.sql").read_text()


async def test_a_database_migrated_under_the_old_names_moves_to_one_stage_table(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("CREATE TABLE schema_migrations "
                           "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        for version, file in RELEASED.items():
            await conn.execute(sql(file))
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        await conn.execute("INSERT INTO provisioner_runs (run_id, fingerprint, status, deadline_at) "
                           "VALUES ('run-old', 'fp', 'done', now())")
        await conn.execute("INSERT INTO executor_runs (run_id, fingerprint, status, attempts, owner) "
                           "VALUES ('run-old', 'fp', 'working', 2, 'w')")
    finally:
        await conn.close()

    pool = await store.connect(empty_database)
    try:
        assert await store.migrate(pool) == ["0006_stage_runs"]
        assert await store.migrate(pool) == []
        rows = await pool.fetch("SELECT stage, status, attempts, owner, deadline_at IS NOT NULL AS deadline "
                                "FROM stage_runs WHERE run_id = 'run-old' ORDER BY stage")
        assert [tuple(r) for r in rows] == [("executor", "working", 2, "w", False),
                                            ("provisioner", "done", 1, None, True)]
        assert await store.run_progress(pool, "run-old") == {"provisioner": "done", "executor": "working"}
        assert await pool.fetchval("SELECT to_regclass('executor_runs')") is None
        versions = {r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations")}
        assert versions == {*RELEASED.values(), "0006_stage_runs"}
    finally:
        await pool.close()

