-- The executor's record of each run's patch: the patch as applied (URL artifacts pinned to
-- their fetched content and hash), what was put into the twin (artifact and package hashes),
-- how it ended, and its whole output up to the cap. Enough to read a run back and repeat it.
CREATE TABLE patch_runs (
    run_id       text PRIMARY KEY,
    patch        jsonb NOT NULL,
    inputs       jsonb NOT NULL DEFAULT '{}',
    outcome      jsonb,
    stdout       bytea NOT NULL DEFAULT '',
    stderr       bytea NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
