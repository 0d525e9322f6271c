"""How to boot, apart from the machine and the callbacks: one frozen object, checked once.

`fastinit.mm.run.prepare` and `boot` take it (or its fields as keywords), a cluster boot
sends it to every worker, and a node's task changes only ``node`` and ``memmap_file``
(`dataclasses.replace`). The keyword list is written here once instead of at every hop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from fastinit.host.niceness import check_nice
from fastinit.validate import check_bool, check_int, check_threads, check_type
from fastinit.mm.deferred import DEFAULT_KERNEL, check_kernel
from fastinit.mm.plan import DEFAULT_ARCH, node_max_threads


@dataclass(frozen=True)
class BootOptions:
    """What to boot with.

    Attributes
    ----------
    arch : str
        Thread-cap profile, a key of `fastinit.mm.plan.ARCH_PROFILES`.
    threads : int or None
        Threads per node, overriding the profile.
    kernel : str
        Deferred-init kernel (see `fastinit.mm.deferred.CHUNK_KERNELS`).
    memmap_file : str or None
        Back the memmap with this file instead of memory.
    force : bool
        Replace an existing fastinit memmap file at ``memmap_file``. The new file is
        written beside it and renamed over it only when the boot completed: until then,
        and if the boot fails or is interrupted, the old file stays as it was.
    replace_any_file : bool
        With ``force``, replace any regular file at ``memmap_file`` (never a directory,
        device, FIFO, socket or symbolic link).
    node : int or None
        Boot this node alone, on a memmap of its sections only (`BootPlan.shard`): its
        descriptors and zones come out as in the whole machine's boot. None: every node.
    nice : int or None
        Run every thread of the boot but the caller's at this niceness (Linux, 0-19; see
        `fastinit.Job`): the first touch's and deferred init's helpers and the nodes'
        pgdatinit threads. None: as the caller.
    """

    arch: str = DEFAULT_ARCH
    threads: int | None = None
    kernel: str = DEFAULT_KERNEL
    memmap_file: str | None = None
    force: bool = False
    replace_any_file: bool = False
    node: int | None = None
    nice: int | None = None

    def __post_init__(self):
        # Refused here, on the caller, before a memmap file is created for nothing.
        node_max_threads(self.arch, 1)  # ValueError for an unknown profile
        object.__setattr__(self, "threads", check_threads(
            self.threads, fix="threads per node, or None for the arch profile's cap"))
        check_kernel(self.kernel)
        check_type(self.memmap_file, (str, os.PathLike), "memmap_file", "a path",
                   optional=True)
        check_bool(self.force, "force")
        check_bool(self.replace_any_file, "replace_any_file")
        if self.node is not None:
            object.__setattr__(self, "node", check_int(self.node, "node", minimum=0,
                                                       fix="a node id of the machine"))
        object.__setattr__(self, "nice", check_nice(self.nice))

    @classmethod
    def of(cls, options: BootOptions | None, choices: dict) -> BootOptions:
        """``options`` (default: the defaults) with the keywords in ``choices`` changed;
        TypeError naming a keyword that is not an option."""
        check_type(options, cls, "options", "a fastinit.mm.options.BootOptions",
                   optional=True)
        unknown = sorted(set(choices) - NAMES)
        if unknown:
            raise TypeError(f"boot() got an unexpected keyword argument {unknown[0]!r}; "
                            f"the boot options are {', '.join(sorted(NAMES))}")
        base = {f.name: getattr(options, f.name) for f in fields(cls)} if options else {}
        return cls(**{**base, **choices})


NAMES = frozenset(f.name for f in fields(BootOptions))
