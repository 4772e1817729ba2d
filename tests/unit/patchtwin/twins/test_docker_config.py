"""A helper container is made with the twins' own labels and HostConfig, loosened only where a
download needs it (a network, the engine's resolvers, its cache volume)."""

from __future__ import annotations

from patchtwin.twins.docker_config import HELPER_HARDENING, HELPER_LIMITS, helper_config, host_config
from patchtwin.twins.runtime import LABEL_EXPIRES, LABEL_INSTANCE, LABEL_OWNER, LABEL_RUN, Helper, labels

HELPER = Helper(role="package-fetcher", image="patchtwin/debian:12", argv=("sh", "-c", "true"),
                collect="/var/cache/apt/archives", caches=(("patchtwin-apt-lists-x", "/var/lib/apt/lists"),))


def test_a_helper_carries_the_labels_the_janitor_finds_twins_by() -> None:
    config = helper_config(HELPER, labels("run-1", owner="me", instance="prod", ttl_s=60))
    assert {k: config["Labels"][k] for k in (LABEL_RUN, LABEL_OWNER, LABEL_INSTANCE)} == \
        {LABEL_RUN: "run-1", LABEL_OWNER: "me", LABEL_INSTANCE: "prod"}
    assert LABEL_EXPIRES in config["Labels"] and config["Labels"]["io.patchtwin.role"] == "package-fetcher"
    assert (config["Image"], config["Cmd"]) == ("patchtwin/debian:12", ["sh", "-c", "true"])


def test_a_helper_is_a_hardened_twin_with_a_network_and_its_cache() -> None:
    host = helper_config(HELPER, {})["HostConfig"]
    twin = host_config(HELPER_LIMITS, HELPER_HARDENING, network="bridge")
    differing = {key for key in twin.keys() | host.keys() if twin.get(key) != host.get(key)}
    assert differing == {"Dns", "Mounts"}
    assert host["Mounts"] == [{"Type": "volume", "Source": "patchtwin-apt-lists-x", "Target": "/var/lib/apt/lists"}]
    assert (host["NetworkMode"], host["CapDrop"], host["SecurityOpt"]) == ("bridge", ["ALL"], ["no-new-privileges"])
    assert host["CapAdd"] == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]
    assert (host["Memory"], host["PidsLimit"]) == (1024 * 1024 * 1024, 256)
