"""Fixtures made by factories, for test modules that need the same kind: a boot result a
module shares, restored after each test (booting once per module keeps the suite fast,
restoring keeps the tests independent), and a file a test starts from."""

from contextlib import contextmanager

import pytest


@contextmanager
def restored(booted):
    """Yield ``booted`` (a BootResult); afterwards its memmap bytes and each zone's free-list
    heads (uint64, shape (orders, migratetypes, 2)), nr_free and managed are as they were."""
    saved = booted.memmap.raw.copy()
    zones = {k: (a.heads.copy(), a.nr_free.copy(), a.managed) for k, a in booted.zones.items()}
    try:
        yield booted
    finally:
        booted.memmap.raw[:] = saved
        for key, area in booted.zones.items():
            area.heads[:], area.nr_free[:], area.managed = zones[key]


def restoring(name: str):
    """A function-scoped fixture yielding the (module-scoped) fixture ``name``'s boot
    result, restored after the test."""
    @pytest.fixture
    def fixture(request):
        with restored(request.getfixturevalue(name)) as booted:
            yield booted
    return fixture


def file_made_by(make, name: str):
    """A fixture: the path ``tmp_path / name`` (a pathlib.Path), after ``make(path)``
    wrote the file there."""
    @pytest.fixture
    def fixture(tmp_path):
        path = tmp_path / name
        make(path)
        return path
    return fixture
