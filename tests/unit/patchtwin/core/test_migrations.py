"""Migration versions are file names, applied in name order: each must have its own number."""

from importlib import resources

from patchtwin.core.store import RENAMED


def names() -> list[str]:
    return sorted(f.name.removesuffix(".sql") for f in resources.files("patchtwin.core.migrations").iterdir()
                  if f.name.endswith(".sql"))


def test_every_migration_has_its_own_number() -> None:
    numbers = [name.split("_", 1)[0] for name in names()]
    assert len(numbers) == len(set(numbers)), names()


def test_every_renamed_migration_is_renamed_to_one_that_exists_and_keeps_its_order() -> None:
    assert set(RENAMED.values()) <= set(names())
    assert sorted(RENAMED) == [old for old, _ in sorted(RENAMED.items(), key=lambda item: item[1])]
