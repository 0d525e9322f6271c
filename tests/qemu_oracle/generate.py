"""Random machines QEMU can build, with random kernel command lines for them.

A `Layout` is everything one boot needs: the QEMU machine (``-machine pc|q35``, CPU model,
``-m``, ``-smp``, NUMA nodes made of ``memory-backend-ram`` objects, nodes without memory
and nodes without CPUs) and the kernel options under test (``mem=``, ``memmap=``,
``movablecore=``/``kernelcore=``, ``crashkernel=``, ``numa=off``/``numa=fake=``,
``hugepagesz=``/``hugepages=``, ``loglevel=8`` or the default console level). The same seed
always gives the same layout, so a campaign's mismatches can be booted again.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass

MIB = 1 << 20
GIB = 1 << 30
# Guest RAM is allocated on touch, but stays bounded so two guests fit beside the tests.
MAX_GUEST_MIB = 16 * 1024
# Debian's kernel and the busybox initramfs boot comfortably in this much.
MIN_GUEST_MIB = 512
# TCG runs one host thread per vCPU: more than 4 only slows the boot on 2 cores.
MAX_SMP = 4


@dataclass(frozen=True)
class NodeSpec:
    """One QEMU NUMA node: its memory (0 for a memory-less node) and its CPU indices."""

    mem_mib: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    """One machine and command line to boot.

    Attributes
    ----------
    seed : int
        The seed `generate` drew it from (-1 for a hand-made layout).
    machine : str
        QEMU machine type, ``pc`` (i440fx) or ``q35``: they put the hole below 4 GiB in
        different places.
    cpu : str
        QEMU CPU model; ``max`` has pdpe1gb, needed for 1 GiB huge pages.
    mem_mib : int
        Guest RAM in MiB (the sum of the nodes' memory when there are nodes).
    smp : int
        vCPUs.
    nodes : tuple of NodeSpec
        NUMA nodes, QEMU node id = index; empty for a machine without ``-numa``.
    options : tuple of str
        Kernel command-line options under test (``console=ttyS0 panic=-1`` are added).
    """

    seed: int
    machine: str
    cpu: str
    mem_mib: int
    smp: int
    nodes: tuple[NodeSpec, ...] = ()
    options: tuple[str, ...] = ()

    def qemu_args(self) -> list[str]:
        """QEMU options for the machine (the runner adds kernel, initrd and console)."""
        args = ["-machine", self.machine, "-cpu", self.cpu, "-m", f"{self.mem_mib}M",
                "-smp", str(self.smp)]
        for nid, node in enumerate(self.nodes):
            spec = f"node,nodeid={nid}"
            if node.cpus:
                spec += f",cpus={node.cpus[0]}-{node.cpus[-1]}"
            if node.mem_mib:
                args += ["-object", f"memory-backend-ram,id=m{nid},size={node.mem_mib}M"]
                spec += f",memdev=m{nid}"
            args += ["-numa", spec]
        return args

    def append(self) -> str:
        """The kernel command line."""
        return " ".join(("console=ttyS0", "panic=-1") + self.options)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict) -> "Layout":
        nodes = tuple(NodeSpec(int(n["mem_mib"]), tuple(int(c) for c in n["cpus"]))
                      for n in document.get("nodes", ()))
        return cls(int(document["seed"]), str(document["machine"]), str(document["cpu"]),
                   int(document["mem_mib"]), int(document["smp"]), nodes,
                   tuple(str(o) for o in document.get("options", ())))

    def describe(self) -> str:
        """One line: machine, memory, nodes and options."""
        nodes = "+".join(f"{n.mem_mib}M:{len(n.cpus)}" for n in self.nodes) or "no NUMA"
        return (f"seed {self.seed}: {self.machine} -cpu {self.cpu} {self.mem_mib}M "
                f"smp {self.smp} [{nodes}] {' '.join(self.options)}")

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def _node_mib(rng: random.Random) -> int:
    """A node size: round sizes as people buy them, and odd ones that split sections."""
    kind = rng.random()
    if kind < 0.35:
        return 128 * rng.randint(1, 32)
    if kind < 0.55:
        return 1024 * rng.randint(1, 6)
    if kind < 0.9:
        return rng.randint(96, 4096)
    return rng.randint(24, 96)  # tiny nodes: a few sections or less


def _low_mib(machine: str, total_mib: int) -> int:
    """RAM below 4 GiB as QEMU 7.2 lays it out (pc: 3 GiB, q35: 2 GiB once it is large)."""
    if machine == "pc":
        return 3072 if total_mib >= 3584 else total_mib
    return 2048 if total_mib >= 2816 else total_mib


def _size_text(rng: random.Random, nbytes: int) -> str:
    """``nbytes`` as the kernel's memparse() reads it, in a unit drawn at random."""
    units = [(s, b) for s, b in (("G", GIB), ("M", MIB), ("K", 1024)) if nbytes % b == 0]
    if units and rng.random() < 0.85:
        suffix, base = units[0] if rng.random() < 0.7 else rng.choice(units)
        if rng.random() < 0.1:
            suffix = suffix.lower()
        return f"{nbytes // base}{suffix}"
    return hex(nbytes) if rng.random() < 0.5 else str(nbytes)


def _draw_nodes(rng: random.Random) -> tuple[int, tuple[NodeSpec, ...]]:
    """(smp, nodes): 2 to 4 nodes, some without memory, some without CPUs."""
    count = rng.randint(2, 4)
    kinds = [rng.choices(["both", "memory", "cpus"], [0.6, 0.25, 0.15])[0]
             for _ in range(count)]
    if all(kind == "cpus" for kind in kinds):
        kinds[rng.randrange(count)] = "both"
    if all(kind == "memory" for kind in kinds):
        kinds[rng.randrange(count)] = "both"
    sizes = [_node_mib(rng) if kind != "cpus" else 0 for kind in kinds]
    with_cpus = [i for i, kind in enumerate(kinds) if kind != "memory"]
    smp = rng.randint(len(with_cpus), max(len(with_cpus), MAX_SMP))
    shares = [1] * len(with_cpus)
    for _ in range(smp - len(with_cpus)):
        shares[rng.randrange(len(shares))] += 1
    cpus, next_cpu = {}, 0
    for index, share in zip(with_cpus, shares):
        cpus[index] = tuple(range(next_cpu, next_cpu + share))
        next_cpu += share
    return smp, tuple(NodeSpec(size, cpus.get(i, ())) for i, size in enumerate(sizes))


def _fit(nodes: tuple[NodeSpec, ...], total: int) -> tuple[NodeSpec, ...]:
    """Scale node sizes so the guest has MIN_GUEST_MIB..MAX_GUEST_MIB of RAM."""
    if MIN_GUEST_MIB <= total <= MAX_GUEST_MIB:
        return nodes
    target = MIN_GUEST_MIB if total < MIN_GUEST_MIB else MAX_GUEST_MIB
    scaled = [max(n.mem_mib * target // total, 16) if n.mem_mib else 0 for n in nodes]
    # Rounding may leave the sum off by a few MiB: give the difference to the largest node.
    largest = max(range(len(nodes)), key=lambda i: scaled[i])
    scaled[largest] += target - sum(scaled)
    return tuple(NodeSpec(size, n.cpus) for size, n in zip(scaled, nodes))


def _memory_options(rng: random.Random, machine: str, total_mib: int) -> list[str]:
    """mem=, memmap= in its forms, as a user would write them."""
    low = _low_mib(machine, total_mib)
    # Guest-physical end of RAM: RAM above the low part is mapped from 4 GiB.
    ram_end = (total_mib if total_mib == low else 4096 + total_mib - low) * MIB
    options = []
    if rng.random() < 0.15:
        limit = rng.randint(384, total_mib) * MIB
        if rng.random() < 0.5:
            limit -= limit % (64 * MIB)
        key = "memmap" if rng.random() < 0.25 else "mem"
        options.append(f"{key}={_size_text(rng, limit)}")
    if rng.random() < 0.3:
        entries = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            kind = rng.choices("$#!@", [0.5, 0.25, 0.15, 0.1])[0]
            # At most a quarter of RAM: a reservation eating it all only makes the boot OOM.
            size = min(int(2 ** rng.uniform(12, 29)), total_mib * MIB // 4)
            if rng.random() < 0.7:
                size = max(size - size % MIB, MIB)
            elif rng.random() < 0.8:
                size -= size % 4096
            if kind == "@":
                # Only over RAM that exists (the kernel would use memory that is not there).
                start = rng.randint(1, max(low // 2, 2)) * MIB
                size = min(size, low * MIB // 2)
            else:
                start = rng.randint(1, ram_end // MIB) * MIB
                if rng.random() < 0.3:
                    start += rng.randrange(256) * 4096
            entries.append(f"{_size_text(rng, size)}{kind}{_size_text(rng, start)}")
        if len(entries) > 1 and rng.random() < 0.5:
            options.append("memmap=" + ",".join(entries))
        else:
            options += [f"memmap={entry}" for entry in entries]
    if rng.random() < 0.03:
        # An exact map: low RAM and part of the RAM above 1 MiB (and above 4 GiB).
        options += ["memmap=exactmap", "memmap=636K@0",
                    f"memmap={rng.randint(256, low - 16)}M@1M"]
        if total_mib > low:
            options.append(f"memmap={rng.randint(1, total_mib - low)}M@4G")
        # With KASLR the kernel may land outside the exact map; the kernel then adds its
        # image back as RAM and says where only at loglevel=8. Sensible uses pin it.
        options.append("nokaslr" if rng.random() < 0.7 else "loglevel=8")
    return options


def _zone_options(rng: random.Random, total_mib: int) -> list[str]:
    """movablecore= and kernelcore=, absolute or in percent, alone or together."""
    options = []
    choice = rng.random()
    if choice < 0.45 or choice >= 0.85:
        if rng.random() < 0.5:
            options.append(f"movablecore={rng.randint(5, 80)}%")
        else:
            mib = rng.randint(32, int(total_mib * 0.75))
            options.append(f"movablecore={_size_text(rng, mib * MIB)}")
    if choice >= 0.45:
        if rng.random() < 0.5:
            options.append(f"kernelcore={rng.randint(25, 100)}%")
        else:
            mib = rng.randint(int(total_mib * 0.25), total_mib + 256)
            options.append(f"kernelcore={_size_text(rng, mib * MIB)}")
    return options


def _hugepage_options(rng: random.Random, cpu: str, total_mib: int,
                      nodes: int) -> list[str]:
    """hugepagesz=/hugepages= for 2 MiB and 1 GiB pages (1 GiB needs -cpu max)."""
    options = []
    if rng.random() < 0.7:
        count = rng.randint(1, max(total_mib // 2 // 3, 1))
        if rng.random() < 0.15:
            # More than a node can hold: the kernel allocates what it can there.
            count = total_mib * 3 // 10
        options.append("hugepagesz=2M")
        if nodes >= 2 and rng.random() < 0.3:
            parts = [f"{nid}:{rng.randint(0, count // nodes + 1)}" for nid in range(nodes)
                     if rng.random() < 0.7] or [f"0:{count // 2}"]
            options.append("hugepages=" + ",".join(parts))
        else:
            options.append(f"hugepages={count}")
    if rng.random() < (0.6 if cpu == "max" else 0.1):
        options += ["hugepagesz=1G", f"hugepages={rng.randint(1, max(total_mib // 4096, 1))}"]
    if options and rng.random() < 0.2:
        options.insert(0, f"default_hugepagesz={rng.choice(['2M', '1G'])}")
    return options


def generate(seed: int) -> Layout:
    """The layout for ``seed``: a machine and a command line, drawn reproducibly."""
    rng = random.Random(seed)
    machine = rng.choice(["pc", "q35"])
    cpu = "max" if rng.random() < 0.3 else "qemu64"
    if rng.random() < 0.6:
        smp, nodes = _draw_nodes(rng)
        nodes = _fit(nodes, sum(n.mem_mib for n in nodes))
        total = sum(n.mem_mib for n in nodes)
    else:
        smp, nodes = rng.randint(1, MAX_SMP), ()
        total = min(max(_node_mib(rng) * rng.choice([1, 1, 2, 3]), MIN_GUEST_MIB),
                    MAX_GUEST_MIB)
    groups = [_memory_options(rng, machine, total)]
    if rng.random() < 0.3:
        groups.append(_zone_options(rng, total))
    if rng.random() < 0.2:
        size = rng.randint(32, min(512, total // 4))
        if rng.random() < 0.3:
            groups.append([f"crashkernel={size}M@{16 * rng.randint(2, 16)}M"])
        else:
            groups.append([f"crashkernel={size}M"])
    numa = rng.random()
    if numa < 0.1:
        groups.append(["numa=off"])
    elif numa < 0.3:
        form = rng.random()
        if form < 0.6:
            groups.append([f"numa=fake={rng.randint(2, 8)}"])
        elif form < 0.85 or not nodes:
            groups.append([f"numa=fake={rng.choice([128, 192, 256, 384, 512, 1024])}M"])
        else:
            groups.append([f"numa=fake={rng.randint(2, 3)}U"])
    if rng.random() < 0.25:
        groups.append(_hugepage_options(rng, cpu, total, max(len(nodes), 1)))
    if rng.random() < 0.5:
        groups.append(["loglevel=8"])
    rng.shuffle(groups)
    options = tuple(option for group in groups for option in group)
    return Layout(seed, machine, cpu, total, smp, nodes, options)
