"""TwinReady → PatchApplied: run the patch in the twin and record exactly how it ended."""
