"""The stages of the pipeline, in the order a run passes them; one service each."""

from enum import StrEnum


class StageName(StrEnum):
    PROVISIONER = "provisioner"
    EXECUTOR = "executor"
    PROBER = "prober"
    ANALYZER = "analyzer"
    JANITOR = "janitor"
