"""Random machines whose kernel command line always asks for HugeTLB boot pools.

For the oracle campaign's ``--focus hugepages``: the same machines as `generate` (QEMU
``pc``/``q35``, up to four NUMA nodes, some without memory or CPUs), each booted with
``hugepagesz=``/``hugepages=`` in every form the kernel takes:

- 2 MiB pages spread over the nodes, in counts that fit and in counts a small node cannot
  hold its share of (its neighbours take the rest), or per node (``0:N,1:M``), including
  counts too large for a node and nodes without memory;
- 1 GiB pages (``-cpu max`` has ``pdpe1gb``; the default CPU model does not, and the kernel
  refuses them), spread or per node; with ``nokaslr`` most of the time, because the
  kernel's image lands at a random physical address otherwise, and the 1 GiB range it
  lands in cannot become a huge page (a boot log does not say where);
- ``default_hugepagesz=``, a count before any size, ``hugetlb_free_vmemmap=on``, and now
  and then an option the kernel rejects with a warning.

The pools never ask for more than about three quarters of the machine's memory: a kernel
left without memory for its own boot does not reach the init that prints the counts.
"""

from __future__ import annotations

import random

from qemu_oracle.generate import (MAX_GUEST_MIB, MAX_SMP, MIN_GUEST_MIB, Layout, NodeSpec,
                                  _draw_nodes, _fit, _node_mib)

# Seeds of this generator are shown with this prefix (cases: huge-N).
PREFIX = "huge"


def _counts_2m(rng: random.Random, nodes: tuple[NodeSpec, ...], total_mib: int,
               share: float) -> list[str]:
    """2 MiB counts for at most ``share`` of the memory when spread."""
    pages = total_mib // 2
    form = rng.random()
    with_memory = [nid for nid, node in enumerate(nodes) if node.mem_mib]
    if len(nodes) >= 2 and form < 0.3:
        parts = []
        for nid, node in enumerate(nodes):
            if rng.random() < 0.75:
                room = node.mem_mib // 2
                # Now and then more than the node holds, or a node without memory.
                count = rng.randint(0, int(room * (1.4 if rng.random() < 0.3 else 0.6)) + 1)
                parts.append(f"{nid}:{count}")
        return ["hugepages=" + ",".join(parts or [f"{with_memory[0]}:1"])]
    if form < 0.65 and len(with_memory) >= 2:
        # Spread: a share too large for the smallest node, the rest within reach.
        return [f"hugepages={rng.randint(int(pages * share / 2), int(pages * share))}"]
    return [f"hugepages={rng.randint(1, max(int(pages * share * 0.4), 1))}"]


def _counts_1g(rng: random.Random, nodes: tuple[NodeSpec, ...], total_mib: int) -> list[str]:
    if len(nodes) >= 2 and rng.random() < 0.35:
        parts = [f"{nid}:{rng.randint(0, node.mem_mib // 1024 + 1)}"
                 for nid, node in enumerate(nodes) if rng.random() < 0.7]
        return ["hugepages=" + ",".join(parts or ["0:1"])]
    return [f"hugepages={rng.randint(1, max(total_mib // 3072, 1))}"]


def generate_hugepages(seed: int) -> Layout:
    """The HugeTLB layout for ``seed``, drawn reproducibly."""
    rng = random.Random(f"{PREFIX}-{seed}")
    machine = rng.choice(["pc", "q35"])
    cpu = "max" if rng.random() < 0.5 else "qemu64"
    if rng.random() < 0.7:
        smp, nodes = _draw_nodes(rng)
        nodes = _fit(nodes, sum(n.mem_mib for n in nodes))
    else:
        smp = rng.randint(1, MAX_SMP)
        size = min(max(_node_mib(rng) * rng.choice([1, 2, 3]), MIN_GUEST_MIB), MAX_GUEST_MIB)
        nodes = ()
    total = sum(n.mem_mib for n in nodes) if nodes else size
    shape = nodes or (NodeSpec(total, tuple(range(smp))),)
    options = []
    gigantic = cpu == "max" and rng.random() < 0.6 or rng.random() < 0.08
    if gigantic:
        options += ["hugepagesz=1G"] + _counts_1g(rng, shape, total)
    if rng.random() < 0.85 or not gigantic:
        share = 0.35 if gigantic else 0.7
        if rng.random() < 0.1 and not options:
            # A count before any size: the default size's.
            options += _counts_2m(rng, shape, total, share)
        else:
            options += ["hugepagesz=2M"] + _counts_2m(rng, shape, total, share)
    if rng.random() < 0.15:
        # Not before a count given without a size: it would become a count of 1 GiB pages.
        default = rng.choice(['2M', '1G']) if options[0].startswith("hugepagesz=") else "2M"
        options.insert(0, f"default_hugepagesz={default}")
    if rng.random() < 0.3:
        options.append(rng.choice(["hugetlb_free_vmemmap=on", "hugetlb_free_vmemmap"]))
    if rng.random() < 0.05:
        options.append(rng.choice(["hugepages=7", "hugepagesz=4M", "hugepages=0:x"]))
    if gigantic and rng.random() < 0.8:
        options.append("nokaslr")
    if rng.random() < 0.15:
        options.append(f"movablecore={rng.randint(10, 50)}%")
    if rng.random() < 0.3:
        options.append("loglevel=8")
    return Layout(seed, machine, cpu, total, smp, nodes, tuple(options))
