"""Fidelity: how close the twin is to the asset it stands for.

Every fact the asset declares — a package at a version, a service running, a file's content,
a port listening — is looked up in the twin's snapshot. The score is the share met (0 to 100);
each fact not met is listed with what was expected and what the twin has.
"""

from __future__ import annotations

import hashlib

from schemas.asset import Asset
from schemas.state import Fidelity, Mismatch, SystemState


def measure(asset: Asset, state: SystemState) -> Fidelity:
    mismatches: list[Mismatch] = []
    declared = 0
    for name, version in sorted(asset.packages.items()):
        declared += 1
        actual = state.packages.get(name)
        if actual != version:
            mismatches.append(Mismatch(kind="package", name=name, expected=version,
                                       actual=actual or "not installed"))
    for service in asset.service_specs:
        declared += 1
        seen = state.services.get(service.name)
        if seen is None or seen.state != "running":
            mismatches.append(Mismatch(kind="service", name=service.name, expected="running",
                                       actual=seen.state if seen else "absent"))
    for spec in asset.files:
        declared += 1
        expected = hashlib.sha256(spec.content.encode()).hexdigest()
        actual = state.files.get(spec.path)
        if actual != expected:
            mismatches.append(Mismatch(kind="file", name=spec.path, expected=f"sha256:{expected[:12]}",
                                       actual=f"sha256:{actual[:12]}" if actual else "absent"))
    listening = {(s.proto.rstrip("6"), s.port) for s in state.listening}
    for port in asset.ports:
        declared += 1
        if (port.protocol, port.port) not in listening:
            mismatches.append(Mismatch(kind="port", name=f"{port.protocol}/{port.port}", expected="listening",
                                       actual="not listening"))
    matched = declared - len(mismatches)
    score = 100.0 if declared == 0 else round(100 * matched / declared, 1)
    return Fidelity(score=score, declared=declared, matched=matched, mismatches=mismatches)
