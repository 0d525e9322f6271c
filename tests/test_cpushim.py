"""The LD_PRELOAD shim the suite runs under to see 1 and 64 CPUs (tests/cpushim.c)."""

import json
import subprocess
import sys

import pytest

import cpushim

pytestmark = pytest.mark.skipif(cpushim.compiler() is None, reason="needs a C compiler")

PROBE = """
import json, os, threading
from fastinit.host.cpus import process_affinity, usable_cpus
from fastinit.engine.workpool import shared_pool
seen = {"count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
        "usable": usable_cpus(max_age=0), "pool": shared_pool().size}
last = max(os.sched_getaffinity(0))
os.sched_setaffinity(0, {last})
inherited = []
worker = threading.Thread(target=lambda: inherited.append(sorted(os.sched_getaffinity(0))))
worker.start()
worker.join()
seen.update(pinned=sorted(os.sched_getaffinity(0)), inherited=inherited[0],
            main_from_thread=sorted(process_affinity()), last=last)
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return cpushim.build(tmp_path_factory.mktemp("cpushim"))


@pytest.mark.parametrize("cpus", [1, 64])
def test_a_process_under_the_shim_sees_and_pins_exactly_that_many_cpus(shim, cpus):
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=cpushim.environment(shim, cpus), timeout=300, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert (seen["count"], seen["affinity"], seen["usable"], seen["pool"]) == (cpus,) * 4
    # Pinned to its last fake CPU; a new thread inherits the mask, as in the kernel, and
    # the main thread's mask reads the same from another thread.
    assert seen["last"] == cpus - 1
    assert seen["pinned"] == seen["inherited"] == seen["main_from_thread"] == [cpus - 1]


def test_the_runner_refuses_a_cpu_count_it_cannot_fake():
    assert cpushim.main(["0", "true"]) == 2
    assert cpushim.main(["64"]) == 2


def test_programs_that_call_sysconf_before_the_shim_is_loaded_run_under_it(shim, tmp_path):
    # coreutils' mv loads libraries whose constructors call sysconf before the shim's own
    # constructor has run: the shim must answer then too (it was a segfault, exit 139).
    source = tmp_path / "a"
    source.write_text("ours\n")
    done = subprocess.run(["sh", "-c", 'mv "$0" "$1" && nproc', str(source), str(tmp_path / "b")],
                          capture_output=True, text=True, env=cpushim.environment(shim, 64),
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["64"]
    assert (tmp_path / "b").read_text() == "ours\n"
