"""Package-manager adapters on recorded command output.

Only dpkg/apt runs for real here (tests/integration/test_twins.py); rpm/dnf/yum and apk are
checked on samples of their output formats, since no such image can be obtained on this machine.
"""

from __future__ import annotations

from patchtwin.twins.packages import PACKAGE_MANAGERS, Apk, Dpkg, Rpm, detect_packages_script

DPKG_LIST = (
    "ii \tbase-files\t12.4+deb12u8\n"
    "ii \tnginx\t1.22.1-9+deb12u1\n"
    "rc \tlibold1\t1.0-1\n"        # removed, configuration left: not installed
    "ii \tlibc6:amd64\t2.36-9+deb12u9\n"
)


def test_dpkg_lists_installed_packages_only() -> None:
    assert Dpkg().parse_list(DPKG_LIST) == {
        "base-files": "12.4+deb12u8", "nginx": "1.22.1-9+deb12u1", "libc6:amd64": "2.36-9+deb12u9"
    }
    assert Dpkg().parse_version(DPKG_LIST, "nginx") == "1.22.1-9+deb12u1"
    assert Dpkg().parse_version(DPKG_LIST, "libold1") is None


def test_apt_names_the_package_whose_pinned_version_is_missing() -> None:
    output = "Reading package lists...\nE: Version '9.9-9' for 'hello' was not found\n"
    assert Dpkg().missing_pin(output, {"hello": "9.9-9", "curl": "7"}) == "hello"
    assert Dpkg().missing_pin("E: Unable to locate package nosuch\n", {"nosuch": "1"}) == "nosuch"
    assert Dpkg().missing_pin("E: Failed to fetch http://deb.debian.org/...\n", {"x": "1"}) is None


def test_apt_install_pins_every_version() -> None:
    command = Dpkg().install_command({"nginx": "1.22.1-9", "curl": "7.88.1-10"})
    assert "curl=7.88.1-10 nginx=1.22.1-9" in command and command.startswith("apt-get update")


RPM_LIST = (
    "bash\t(none)\t5.1.8-9.el9\n"
    "openssl\t1\t3.0.7-27.el9\n"
    "gpg-pubkey\t(none)\t5a6340b3-6229229e\n"
)


def test_rpm_lists_packages_with_epochs() -> None:
    assert Rpm().parse_list(RPM_LIST) == {"bash": "5.1.8-9.el9", "openssl": "1:3.0.7-27.el9"}


def test_dnf_and_yum_name_the_missing_pin() -> None:
    pins = {"openssl": "1:3.0.7-99.el9"}
    assert Rpm().missing_pin("No match for argument: openssl-3.0.7-99.el9\nError: Unable to find a match", pins) \
        == "openssl"
    assert PACKAGE_MANAGERS["yum"].missing_pin("No package openssl-3.0.7-99.el9 available.\n", pins) == "openssl"
    assert "dnf install -y openssl-3.0.7-99.el9" in Rpm().install_command(pins)


APK_LIST = (
    "musl-1.2.4-r2 x86_64 {musl} (MIT) [installed]\n"
    "ca-certificates-bundle-20230506-r0 x86_64 {ca-certificates} (MPL-2.0 AND MIT) [installed]\n"
    "busybox-1.36.1-r5 x86_64 {busybox} (GPL-2.0-only) [installed]\n"
)


def test_apk_splits_names_with_dashes_from_versions() -> None:
    assert Apk().parse_list(APK_LIST) == {
        "musl": "1.2.4-r2", "ca-certificates-bundle": "20230506-r0", "busybox": "1.36.1-r5"
    }


def test_apk_names_the_missing_pin() -> None:
    output = "ERROR: unable to select packages:\n  curl=9.9-r0:\n    breaks: world[curl=9.9-r0]\n"
    assert Apk().missing_pin(output, {"curl": "9.9-r0"}) == "curl"


def test_detection_script_tries_each_manager_in_turn() -> None:
    script = detect_packages_script()
    assert script.index("dpkg-query") < script.index("rpm -qa") < script.index("apk list")
