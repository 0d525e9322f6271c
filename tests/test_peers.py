"""The benchmark peers do the same work: their result equals a serial boot byte for byte."""

import numpy as np
import pytest

from fastinit.mm.run import boot, prepare
from fastinit.bench.peers import peer_deferred_init
from fastinit.machine.spec import parse_spec
from fastinit.mm.verify import verify


@pytest.mark.parametrize("peer, threads", [("numba.prange", 1), ("numba.prange", 2),
                                           ("numpy", 1)])
def test_peer_equals_serial_boot(peer, threads):
    topology = parse_spec("2x1G,cpus=2")
    serial = boot(topology, threads=1, kernel="plain")
    result = prepare(topology)
    assert peer_deferred_init(result, peer, threads) > 0
    assert np.array_equal(result.memmap.raw, serial.memmap.raw)
    for key, area in serial.zones.items():
        assert np.array_equal(area.heads, result.zones[key].heads)
        assert np.array_equal(area.nr_free, result.zones[key].nr_free)
        assert area.managed == result.zones[key].managed
    assert verify(result).ok
