"""A fast slice of the memmap-file fuzz campaign (perf/fuzz_memmap_files.py runs 100,000):
mutated files from a spec and from a real boot log, each checked by a watched worker
process; no traceback, signal, hang, runaway memory or unnamed refusal."""

from memmap_fuzz import make_bases
from memmap_fuzz_run import FAILURES, campaign


def test_a_slice_of_the_fuzz_campaign_finds_no_crash(tmp_path):
    bases = make_bases(tmp_path, only={"spec-1x128M", "log-kvm-512m-syslog-3.13.txt"})
    result = campaign(bases, 200, seed=2024, findings=tmp_path / "findings", seconds=60)
    failures = {kind: {o: n for o, n in tally.items() if o in FAILURES}
                for kind, tally in result["outcomes"].items()}
    assert result["failures"] == 0, (failures, result["samples"])
    seen = {outcome for tally in result["outcomes"].values() for outcome in tally}
    # The slice reached every layer: header refusals, checksum, zone checks and verify.
    assert {"refused", "damaged", "failed"} <= seen
    assert result["checked"] >= 190
