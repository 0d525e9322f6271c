"""fastinit: deferred struct page init, padata-style, in user space.

The engine (`Job`, `do_multithreaded`) needs no compiler; `boot` and the rest load the
machine model and the Numba kernels on first use, so ``import fastinit`` stays cheap.

The layers, bottom up (tests/test_layers.py holds the order): `fastinit.units` and
`fastinit.validate` (rounding, argument checks), `fastinit.host` (the CPUs, memory and
niceness the host allows), `fastinit.engine` (jobs and threads), `fastinit.layout` (the
page descriptor), `fastinit.kernels` (Numba kernels), `fastinit.machine` (the machine
model), `fastinit.arrays` (users' own arrays: `empty`, `fill`, `create_memmap`),
`fastinit.mm` (the simulated boot; `fastinit.mm.hugetlb` its HugeTLB pools),
`fastinit.bench`, `fastinit.distributed` (nodes on dask workers), `fastinit.report`
(lines, tables and JSON for all of them) and `fastinit.cli`.
"""

import os as _os  # loaded at start-up already; pathlib is not (see fastinit.entry)

__version__ = "0.1.0"

# In a source tree the kernels live in the top-level kernels/ folder, which installing maps
# to fastinit.kernels. Run from a checkout (installed in editable mode or not at all), look
# for them beside this package first, so this tree never imports another tree's kernels.
_here = _os.path.dirname(__file__)
if not _os.path.isdir(_os.path.join(_here, "kernels")) and \
        _os.path.isfile(_os.path.join(_here, "..", "kernels", "__init__.py")):
    __path__.append(_os.path.dirname(_here))
del _here

# Public names, imported when first used: the machine model and Numba are slow to load,
# and even the engine is 0.1 s that the command line spends before it takes Ctrl-C.
_LAZY = {**dict.fromkeys(("Job", "JobCancelled", "JobInterrupted", "JobReport",
                          "OversubscriptionWarning", "do_multithreaded"),
                         "fastinit.engine.padata"),
         "boot": "fastinit.api", "BootResult": "fastinit.mm.run",
         "cluster_boot": "fastinit.distributed.api",  # needs the distributed extra to run
         "create_memmap": "fastinit.arrays.create_open",
         "open_memmap": "fastinit.arrays.npymemmap",
         "open_memmap_file": "fastinit.arrays.create_open",
         "MemmapFile": "fastinit.arrays.create_open",
         "MemmapFileError": "fastinit.arrays.errors",
         "IncompleteMemmapError": "fastinit.arrays.errors",
         "DamagedMemmapError": "fastinit.arrays.errors",
         "MemmapBusyError": "fastinit.arrays.errors",
         "empty": "fastinit.arrays.alloc", "allocation": "fastinit.arrays.alloc",
         "Allocation": "fastinit.arrays.alloc",
         "fill": "fastinit.arrays.fill", "FillReport": "fastinit.arrays.fill",
         "parse_spec": "fastinit.machine.spec", "read_bootlog": "fastinit.machine.bootlog",
         "this_machine": "fastinit.machine.host", "Topology": "fastinit.machine.topology"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastinit' has no attribute {name!r}")


def __dir__():
    # Tab completion and dir() show the lazy names too.
    return sorted(set(globals()) | set(_LAZY))


__all__ = [*_LAZY, "__version__"]
