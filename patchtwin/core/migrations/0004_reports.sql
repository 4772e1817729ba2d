-- The analyzer's reports (json, junit, markdown), rendered once when the verdict is issued and
-- written in the same transaction as the verdict row, so `patchtwin report` reads what was issued.
CREATE TABLE IF NOT EXISTS reports (
    run_id      text NOT NULL,
    format      text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, format)
);
