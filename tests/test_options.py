"""BootOptions: the boot's keywords written once, frozen, checked where the caller passes them."""

import dataclasses
import pickle

import pytest

from fastinit.machine.spec import parse_spec
from fastinit.mm.options import BootOptions
from fastinit.mm.run import boot


def test_options_are_frozen_and_pickle_for_the_workers():
    options = BootOptions(threads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.threads = 3
    assert pickle.loads(pickle.dumps(options)) == options
    assert dataclasses.replace(options, node=1).node == 1 and options.node is None


@pytest.mark.parametrize("choices, error, says", [
    ({"arch": "vax"}, ValueError, "unknown arch profile 'vax'"),
    ({"threads": 0}, ValueError, "threads"),
    ({"kernel": "fast"}, ValueError, "unknown deferred-init kernel 'fast'"),
    ({"force": "yes"}, TypeError, "force"),
    ({"memmap_file": 7}, TypeError, "memmap_file"),
    ({"node": -1}, ValueError, "node"),
])
def test_a_bad_option_is_refused_when_made(choices, error, says):
    with pytest.raises(error, match=says):
        BootOptions(**choices)


def test_keywords_change_the_options_given_and_unknown_ones_are_named():
    base = BootOptions(threads=2, kernel="plain")
    assert BootOptions.of(base, {"threads": 1}) == BootOptions(threads=1, kernel="plain")
    assert BootOptions.of(None, {}) == BootOptions()
    with pytest.raises(TypeError, match="unexpected keyword argument 'thread'; the boot "
                                        "options are arch, force"):
        BootOptions.of(base, {"thread": 1})


def test_boot_takes_the_object_or_its_fields_alike():
    topology = parse_spec("1x1G,cpus=2")
    by_object = boot(topology, BootOptions(threads=1, kernel="plain"))
    by_keywords = boot(topology, threads=1, kernel="plain")
    assert by_object.nodes[0].report.nworks == by_keywords.nodes[0].report.nworks == 1
    assert (by_object.memmap.raw == by_keywords.memmap.raw).all()
