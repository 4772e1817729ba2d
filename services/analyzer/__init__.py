"""ChecksCompleted | RunFailed → VerdictIssued: judge the patch from what was observed."""
