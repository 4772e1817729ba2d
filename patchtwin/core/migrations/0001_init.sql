-- Every stage keeps one ledger row per run in its own table; the row and the
-- stage's outgoing event (in `outbox`) are written in one transaction.

CREATE TABLE outbox (
    event_id     text PRIMARY KEY,
    run_id       text NOT NULL,
    topic        text NOT NULL,
    source       text NOT NULL,
    ce_type      text NOT NULL,
    payload      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (source, created_at) WHERE published_at IS NULL;

CREATE TABLE provisioner_runs (
    run_id       text PRIMARY KEY,
    fingerprint  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('working', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 1,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    deadline_at  timestamptz,
    outcome      jsonb
);

CREATE TABLE executor_runs (LIKE provisioner_runs INCLUDING ALL);
CREATE TABLE prober_runs (LIKE provisioner_runs INCLUDING ALL);
CREATE TABLE analyzer_runs (LIKE provisioner_runs INCLUDING ALL);
CREATE TABLE janitor_runs (LIKE provisioner_runs INCLUDING ALL);

CREATE TABLE verdicts (
    run_id      text PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    status      text NOT NULL,
    confidence  double precision NOT NULL,
    summary     text NOT NULL,
    asset_id    text,
    patch_id    text,
    verdict     jsonb NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verdicts_issued_at ON verdicts (issued_at DESC);
