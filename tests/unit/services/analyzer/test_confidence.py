"""The confidence score: its formula, docs/verdict.md's worked example, and its monotonic properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import CHECK_FAMILIES, CheckVerdict, Classification
from schemas.state import Fidelity
from services.analyzer.confidence import (
    Basis,
    Evidence,
    compute,
    read_fidelity,
    read_samples,
)

NOT_FLAKY = [Classification.STABLE, Classification.FIXED, Classification.PRE_EXISTING]


def verdict(name: str, kind: Classification = Classification.STABLE, type_: str = "command",
            data: bool = True) -> CheckVerdict:
    before = {Classification.FIXED: "failed", Classification.PRE_EXISTING: "failed"}.get(kind, "passed")
    after = {Classification.REGRESSION: "failed", Classification.PRE_EXISTING: "failed"}.get(kind, "passed")
    return CheckVerdict(name=name, type=type_, critical=True, baseline=before, after=after if data else "error",
                        classification=kind)


checks_st = st.lists(
    st.builds(verdict, name=st.uuids().map(str), kind=st.sampled_from(NOT_FLAKY),
              type_=st.sampled_from([*CHECK_FAMILIES, "performance"]), data=st.booleans()),
    max_size=12,
)
evidence_st = st.builds(
    Evidence, checks=checks_st, basis=st.sampled_from(list(Basis)), repeats=st.integers(1, 10),
    stderr=st.booleans(), fidelity=st.one_of(st.none(), st.floats(0, 1)),
    samples=st.dictionaries(st.text(max_size=3), st.integers(0, 200), max_size=3),
)


def with_checks(evidence: Evidence, checks: list[CheckVerdict]) -> Evidence:
    return Evidence(checks=checks, basis=evidence.basis, repeats=evidence.repeats, stderr=evidence.stderr,
                    fidelity=evidence.fidelity, samples=evidence.samples)


@settings(max_examples=60, deadline=None)  # the machine is shared: no per-example deadline
@given(evidence_st, st.data())
def test_turning_checks_flaky_never_raises_confidence(evidence: Evidence, data: st.DataObject) -> None:
    if not evidence.checks:
        return
    chosen = data.draw(st.sets(st.integers(0, len(evidence.checks) - 1), min_size=1))
    flakier = [c.model_copy(update={"classification": Classification.FLAKY}) if i in chosen else c
               for i, c in enumerate(evidence.checks)]

    assert compute(with_checks(evidence, flakier)).score <= compute(evidence).score


@settings(max_examples=60, deadline=None)  # the machine is shared: no per-example deadline
@given(evidence_st, st.lists(st.sampled_from(CHECK_FAMILIES), min_size=1, max_size=5), st.booleans())
def test_adding_flaky_checks_never_raises_confidence(evidence: Evidence, families: list[str], data: bool) -> None:
    extra = [verdict(f"flaky-{i}", Classification.FLAKY, family, data) for i, family in enumerate(families)]

    assert compute(with_checks(evidence, [*evidence.checks, *extra])).score <= compute(evidence).score


@settings(max_examples=60, deadline=None)  # the machine is shared: no per-example deadline
@given(evidence_st, st.floats(0, 1), st.floats(0, 1))
def test_lower_fidelity_never_raises_confidence(evidence: Evidence, a: float, b: float) -> None:
    low, high = sorted((a, b))
    score = {f: compute(Evidence(checks=evidence.checks, basis=evidence.basis, repeats=evidence.repeats,
                                 stderr=evidence.stderr, fidelity=f, samples=evidence.samples)).score
             for f in (low, high)}

    assert score[low] <= score[high]


@settings(max_examples=60, deadline=None)  # the machine is shared: no per-example deadline
@given(evidence_st)
def test_the_score_is_between_0_and_100_and_is_the_product_of_the_applied_factors(evidence: Evidence) -> None:
    scored = compute(evidence)

    product = 100.0
    for factor in scored.factors:
        product *= factor.value if factor.applied else 1
    assert 0 <= scored.score <= 100
    assert abs(scored.score - product) <= 0.06  # factors are emitted to 4 places, the score to 1


def test_worked_example_of_the_readme() -> None:
    """docs/verdict.md "Confidence": 7 checks of 7 of the 9 families, all with data, 2 repeats, a patch that
    wrote to stderr, a twin of unknown fidelity; then one regressed; then one flaky instead.
    (When the families change, docs/verdict.md's example changes with them.)"""
    families = CHECK_FAMILIES[:7]
    checks = [verdict(f"c{i}", type_=family) for i, family in enumerate(families)]
    regressed = [verdict("c0", Classification.REGRESSION, families[0]), *checks[1:]]
    flaky = [verdict("c0", Classification.FLAKY, families[0]), *checks[1:]]

    good = compute(Evidence(checks=checks, basis=Basis.PASSED, repeats=2, stderr=True))
    broken = compute(Evidence(checks=regressed, basis=Basis.REGRESSION, repeats=2, stderr=True))
    wobbly = compute(Evidence(checks=flaky, basis=Basis.PASSED, repeats=2, stderr=True))
    measured = compute(Evidence(checks=checks, basis=Basis.PASSED, repeats=2, stderr=True, fidelity=1.0))

    assert len(CHECK_FAMILIES) == 9
    assert (good.score, broken.score, wobbly.score, measured.score) == (64.6, 78.8, 52.7, 71.8)
    assert good.formula.startswith("passed: 100 * data_share 1.000 * stability 1.000 * fidelity 0.900")


def test_a_failure_by_the_patchs_own_ending_rests_on_fidelity_alone() -> None:
    scored = compute(Evidence(checks=[verdict("x", Classification.FLAKY)], basis=Basis.PATCH_ENDED_BADLY,
                              fidelity=0.8))

    assert scored.score == 80.0
    assert [f.name for f in scored.factors if f.applied] == ["fidelity"]


def test_no_checks_is_no_evidence_that_nothing_broke() -> None:
    assert compute(Evidence(checks=[], basis=Basis.PASSED, fidelity=1.0)).score == 0.0


def test_few_performance_samples_lower_the_score() -> None:
    checks = [verdict("latency", type_="performance")]
    full = compute(Evidence(checks=checks, basis=Basis.PASSED, samples={"latency": 50})).score
    few = compute(Evidence(checks=checks, basis=Basis.PASSED, samples={"latency": 8})).score

    assert few < full


def test_fidelity_is_the_provisioners_score_as_a_fraction_and_unknown_when_nothing_was_declared() -> None:
    assert read_fidelity(None)[0] is None
    assert read_fidelity(Fidelity(score=100, declared=0))[0] is None
    value, note = read_fidelity(Fidelity(score=75, declared=4, matched=3))
    assert (value, note) == (0.75, "75% (3/4) of the asset's declared facts met")


def test_samples_are_read_from_a_count_or_a_list() -> None:
    assert read_samples({"samples": 50}) == 50
    assert read_samples({"samples": [1.0, 2.0]}) == 2
    assert read_samples({"p50_ms": 3}) is None
