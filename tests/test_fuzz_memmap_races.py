"""A fast slice of the race fuzz campaign (perf/fuzz_memmap_races.py runs 50,000 cases):
header fields flipped by a racing writer process while the file is opened, and strange
entries at the lock and temporary names; no signal, traceback or lost file."""

from memmap_race_fuzz import FAILURES, campaign


def test_a_slice_of_the_race_campaign_finds_no_crash_and_loses_no_file(tmp_path):
    result = campaign(tmp_path, 150, seed=2026, batch=75, seconds=300)
    assert result["failures"] == 0, result["samples"]
    outcomes = {key.split(":")[1] for key in result["tally"]}
    assert not outcomes & set(FAILURES)
    # The slice reached every kind, and both ends of each: done and refused.
    kinds = {key.split(":")[0] for key in result["tally"]}
    assert kinds == {"header-race", "lock-name", "temp-name"}
    assert {"opened", "refused", "done"} <= outcomes
    assert sum(result["tally"].values()) == 150
