-- One ledger table for every stage, keyed by (stage, run_id), instead of one table per stage
-- created LIKE provisioner_runs: the rows move over as they are, the old tables go.
CREATE TABLE stage_runs (
    stage        text NOT NULL,
    run_id       text NOT NULL,
    fingerprint  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('working', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 1,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    deadline_at  timestamptz,
    outcome      jsonb,
    owner        text,
    lease_until  timestamptz,
    PRIMARY KEY (stage, run_id)
);

INSERT INTO stage_runs (stage, run_id, fingerprint, status, attempts, started_at, finished_at, deadline_at,
                        outcome, owner, lease_until)
          SELECT 'provisioner', run_id, fingerprint, status, attempts, started_at, finished_at, deadline_at,
                 outcome, owner, lease_until FROM provisioner_runs
UNION ALL SELECT 'executor', run_id, fingerprint, status, attempts, started_at, finished_at, deadline_at,
                 outcome, owner, lease_until FROM executor_runs
UNION ALL SELECT 'prober', run_id, fingerprint, status, attempts, started_at, finished_at, deadline_at,
                 outcome, owner, lease_until FROM prober_runs
UNION ALL SELECT 'analyzer', run_id, fingerprint, status, attempts, started_at, finished_at, deadline_at,
                 outcome, owner, lease_until FROM analyzer_runs
UNION ALL SELECT 'janitor', run_id, fingerprint, status, attempts, started_at, finished_at, deadline_at,
                 outcome, owner, lease_until FROM janitor_runs;

DROP TABLE provisioner_runs, executor_runs, prober_runs, analyzer_runs, janitor_runs;

-- a run's rows across the stages (`patchtwin show`, the watchdog's "still working")
CREATE INDEX stage_runs_run ON stage_runs (run_id);
-- the watchdog looks for runs past their deadline (only the provisioner's row has one)
CREATE INDEX stage_runs_deadline ON stage_runs (deadline_at) WHERE deadline_at IS NOT NULL;
-- runs still being worked on, by stage (was provisioner_runs_working)
CREATE INDEX stage_runs_working ON stage_runs (stage, started_at) WHERE status = 'working';
