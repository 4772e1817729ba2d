"""The probe engine shared by the provisioner (baseline) and the prober (after the patch)."""

from patchtwin.checks.engine import build_script, log_marks_from, parse_output, run_suite

__all__ = ["build_script", "log_marks_from", "parse_output", "run_suite"]
