"""How a run is seen from outside: traces and metrics (telemetry), JSON logs, each process's
HTTP endpoint (/healthz /readyz /metrics) and the samplers of twins and consumer lag."""
