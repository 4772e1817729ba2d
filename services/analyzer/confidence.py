"""The confidence score: how well the evidence supports the status, from 0 to 100.

Every factor is something observed in the run and is emitted with the verdict (with
what it was computed from), so a person can redo the sum; docs/verdict.md "Confidence" holds the
same formula with a worked example. Each factor is a number from 0 to 1 and the score
is 100 times the product of the factors that the status's rule uses:

    passed       data_share * stability * fidelity * coverage_factor * repeat_factor
                 * sample_factor * stderr_factor
    failed, by a regression or an exceeded limit
                 stability * fidelity * repeat_factor * sample_factor
    failed, because the patch itself ended badly
                 fidelity
    error        1 (the test could not be carried out: observed directly)

Being products of factors that only fall as evidence gets worse, two properties hold
(and are tested): more flaky checks never raise the score, lower fidelity never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from schemas import CHECK_FAMILIES, CheckVerdict, Classification, ConfidenceFactor
from schemas.state import Fidelity

#: Fidelity assumed when the provisioner reported none (a twin of unknown likeness).
UNKNOWN_FIDELITY = 0.9
#: Performance samples at which a latency figure counts as fully measured.
FULL_SAMPLES = 50
#: Factor applied when the patch wrote to stderr: something may have gone half-wrong.
STDERR_FACTOR = 0.9


class Basis(StrEnum):
    """Which rule of the status the score supports."""

    PASSED = "passed"
    REGRESSION = "regression"
    PATCH_ENDED_BADLY = "patch_ended_badly"
    ERROR = "error"


#: The factors each basis multiplies, in the order the formula is written.
FORMULA: dict[Basis, tuple[str, ...]] = {
    Basis.PASSED: ("data_share", "stability", "fidelity", "coverage_factor", "repeat_factor",
                   "sample_factor", "stderr_factor"),
    Basis.REGRESSION: ("stability", "fidelity", "repeat_factor", "sample_factor"),
    Basis.PATCH_ENDED_BADLY: ("fidelity",),
    Basis.ERROR: (),
}


@dataclass(frozen=True)
class Evidence:
    """What the score is computed from: nothing else goes in."""

    checks: list[CheckVerdict]
    basis: Basis
    repeats: int = 1
    stderr: bool = False
    #: 0 to 1 as the provisioner measured it; None when it did not say.
    fidelity: float | None = None
    fidelity_note: str = ""
    #: Per performance check, the samples behind its figures (the fewer of baseline and after).
    samples: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Confidence:
    score: float
    factors: list[ConfidenceFactor]
    inputs: dict[str, float]
    formula: str


def has_data(check: CheckVerdict) -> bool:
    return check.baseline != "error" and check.after != "error"


def compute(evidence: Evidence) -> Confidence:
    checks = evidence.checks
    total = len(checks)
    flaky = [c for c in checks if c.classification is Classification.FLAKY]
    consistent = [c for c in checks if c.classification is not Classification.FLAKY]
    usable = [c for c in consistent if has_data(c)]
    families = sorted({c.type for c in usable} & set(CHECK_FAMILIES))  # known families only: coverage ≤ 1
    fidelity = UNKNOWN_FIDELITY if evidence.fidelity is None else min(1.0, max(0.0, evidence.fidelity))
    smallest = min(evidence.samples.values()) if evidence.samples else None

    # A flaky check counts in `stability` only; `data_share` is over the consistent checks, so no
    # check is counted twice and data_share * stability = usable checks / checks.
    # Kept exact (fractions), so equal evidence gives an equal score whatever way it was split.
    data_share = Fraction(len(usable), len(consistent)) if consistent else Fraction(1 if total else 0)
    stability = 1 - Fraction(len(flaky), total) if total else Fraction(1)
    coverage = len(families) / len(CHECK_FAMILIES)
    repeat_factor = 1 - 0.5 ** (evidence.repeats + 1)
    sample_factor = 1.0 if smallest is None else min(1.0, math.sqrt(smallest / FULL_SAMPLES))
    stderr_factor = STDERR_FACTOR if evidence.stderr else 1.0

    observed: dict[str, tuple[float | Fraction, str]] = {
        "data_share": (data_share, f"{len(usable)} of {len(consistent)} consistent checks returned data "
                                   "before and after" if total else "no checks: no evidence"),
        "stability": (stability, f"{len(flaky)} of {total} checks flaky"
                                 + (f" ({', '.join(c.name for c in flaky)})" if flaky else "")),
        "fidelity": (fidelity, evidence.fidelity_note or (
            f"unknown; default {UNKNOWN_FIDELITY}" if evidence.fidelity is None else f"{evidence.fidelity:.3g}")),
        "coverage_factor": (0.6 + 0.4 * coverage, f"0.6 + 0.4 * coverage; coverage {len(families)} of "
                                                  f"{len(CHECK_FAMILIES)} families ({', '.join(families) or 'none'})"),
        "repeat_factor": (repeat_factor, f"1 - 0.5^(repeats + 1), {evidence.repeats} repeats"),
        "sample_factor": (sample_factor, "no performance checks" if smallest is None else
                          f"sqrt(min(samples, {FULL_SAMPLES}) / {FULL_SAMPLES}), fewest samples {smallest}"),
        "stderr_factor": (stderr_factor, "the patch wrote to stderr" if evidence.stderr
                          else "nothing on stderr"),
    }
    used = FORMULA[evidence.basis]
    exact = math.prod((v for n, (v, _) in observed.items() if n in used and isinstance(v, Fraction)), start=Fraction(1))
    product = float(exact) * math.prod(v for n, (v, _) in observed.items() if n in used and isinstance(v, float))
    # Rounded as by hand (half up, after dropping float noise), so a person redoing the sum agrees.
    score = float(Decimal(str(round(100 * product, 9))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    factors = [ConfidenceFactor(name=name, value=round(float(value), 4), observed=text, applied=name in used)
               for name, (value, text) in observed.items()]
    formula = " * ".join(["100", *(f"{name} {float(observed[name][0]):.3f}" for name in used)]) + f" = {score}"
    inputs: dict[str, float] = {
        "checks": float(total),
        "checks_with_data": float(sum(1 for c in checks if has_data(c))),
        "flaky": float(len(flaky)),
        "families": float(len(families)),
        "coverage": coverage,
        "repeats": float(evidence.repeats),
        "fidelity_reported": -1.0 if evidence.fidelity is None else evidence.fidelity,
        "min_samples": -1.0 if smallest is None else float(smallest),
        **{name: float(value) for name, (value, _) in observed.items()},
    }
    return Confidence(score=score, factors=factors, inputs=inputs, formula=f"{evidence.basis.value}: {formula}")


def read_fidelity(fidelity: Fidelity | None) -> tuple[float | None, str]:
    """The provisioner's fidelity as 0 to 1 (None: unknown), and what it rests on.

    An asset that declares nothing to compare gives no measure of likeness: unknown, not 100%."""
    if fidelity is None:
        return None, f"unknown: the provisioner reported none; default {UNKNOWN_FIDELITY}"
    if not fidelity.declared:
        return None, f"unknown: the asset declares nothing to compare; default {UNKNOWN_FIDELITY}"
    return fidelity.score / 100, f"{fidelity.summary()} of the asset's declared facts met"


def read_samples(evidence: dict[str, Any]) -> int | None:
    """The number of latency samples a performance result was computed from, if it says."""
    for key in ("samples", "sample_count", "n"):
        value = evidence.get(key)
        if isinstance(value, list):
            return len(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
