"""The Python API's one shape: fastinit.boot's keywords, one return type, progress(done,
total) everywhere, every public name (lazy ones too) in dir() and importable."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import fastinit
from fastinit.machine.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent


def test_dir_lists_every_public_name_and_each_resolves():
    names = dir(fastinit)
    for name in fastinit.__all__:
        assert name in names, name
        if name != "cluster_boot":  # importable without the distributed extra
            assert getattr(fastinit, name) is not None, name
    assert {"empty", "fill", "create_memmap", "open_memmap", "boot"} <= set(names)


def test_file_errors_are_importable_from_fastinit():
    from fastinit import (DamagedMemmapError, IncompleteMemmapError, MemmapBusyError,
                          MemmapFileError)
    assert issubclass(IncompleteMemmapError, MemmapFileError)
    assert issubclass(DamagedMemmapError, MemmapFileError)
    assert issubclass(MemmapBusyError, MemmapFileError)
    assert issubclass(MemmapFileError, ValueError)


def test_boot_spells_out_its_keywords_and_lives_outside_the_distributed_layer():
    assert fastinit.boot.__module__ == "fastinit.api"
    parameters = inspect.signature(fastinit.boot).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    assert {"arch", "threads", "verify", "digests", "memmap_file", "nice", "progress",
            "touch_progress", "verify_progress", "cancel"} <= set(parameters)


def test_importing_fastinit_boot_imports_no_dask():
    program = "import sys, fastinit; fastinit.boot; print('distributed' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "False"


def test_boot_with_verify_and_digests_returns_one_boot_result_with_both():
    calls = {"progress": [], "touch_progress": [], "verify_progress": []}
    hooks = {name: (lambda seen: lambda done, total: seen.append((done, total)))(seen)
             for name, seen in calls.items()}
    result = fastinit.boot(parse_spec("2x1G"), threads=1, verify=True, digests=True, **hooks)
    assert isinstance(result, fastinit.BootResult)
    assert result.verification.ok
    assert sorted(result.digests) == [node.nid for node in result.plan.nodes]
    assert all(len(d["digest"]) == len(d["state_digest"]) == 64
               for d in result.digests.values())
    # The same node digests as a boot with one thread per node gets anywhere.
    again = fastinit.boot(parse_spec("2x1G"), threads=1, digests=True)
    assert again.digests == result.digests
    for name, seen in calls.items():
        total = seen[0][1]
        assert seen[0] == (0, total) and seen[-1] == (total, total), name
    assert calls["verify_progress"][-1][1] == len(result.memmap.pages)


@pytest.mark.parametrize("keyword", ["verify", "digests"])
def test_a_flag_that_is_not_a_bool_is_refused_naming_the_keyword(keyword):
    with pytest.raises(TypeError, match=keyword):
        fastinit.boot(parse_spec("1x1G"), **{keyword: "yes"})


def test_the_package_ships_type_hints():
    assert (Path(fastinit.__file__).parent / "py.typed").is_file()
