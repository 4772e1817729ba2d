"""What every stage stands on: the bus (broker, CloudEvents), the stage's inbox, run ledger and
outbox, the store (pool, migrations, records) and retries."""
