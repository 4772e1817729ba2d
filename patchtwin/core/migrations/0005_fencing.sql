-- Fencing: a stage's row of a run is leased to the worker handling it (`owner`, renewed
-- until `lease_until`); another worker takes the run over only once the lease ran out, as
-- the next attempt, and writes name their attempt, so a zombie's late write is refused.
ALTER TABLE provisioner_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz;
ALTER TABLE executor_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz;
ALTER TABLE prober_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz;
ALTER TABLE analyzer_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz;
ALTER TABLE janitor_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz;
-- the watchdog looks for runs whose work has stalled
CREATE INDEX provisioner_runs_working ON provisioner_runs (started_at) WHERE status = 'working';
