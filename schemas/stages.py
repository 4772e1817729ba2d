"""The stages of the pipeline, in the order a run passes them; one service each."""

from enum import StrEnum


class StageName(StrEnum):
    PROVISIONER = "provisioner"
    EXECUTOR = "executor"
    PROBER = "prober"
    ANALYZER = "analyzer"
    JANITOR = "janitor"


#: Stages whose work is pointless once the run has its verdict (the watchdog may give one early).
BEFORE_THE_VERDICT = frozenset({StageName.PROVISIONER, StageName.EXECUTOR, StageName.PROBER})
