"""PatchApplied → ChecksCompleted: run the check suite on the patched twin."""
