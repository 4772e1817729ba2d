"""VerdictIssued → TwinReleased: remove the run's twin; reap expired and orphaned twins."""
