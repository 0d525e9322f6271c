"""What a page memmap file says about the boot that wrote it, written and checked field by field.

The metadata is untrusted when read back: every field is checked for its exact type and
range before anything is built from it (no float where an int belongs, no bool for an
int, no missing key, no list longer than a real machine needs), so a damaged or forged
header is refused with the field's name, never a KeyError or OverflowError. The caps
bound the work a header can ask for (planning a machine, walking its ranges).
"""

from __future__ import annotations

import hashlib
import json

from fastinit.arrays.fileformat import header_int
from fastinit.layout import (MAX_NUMNODES, MAX_PFN, NR_CPUS, PAGE_DTYPE,
                             PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION, VMEMMAP_START,
                             ZONES_PGSHIFT)
from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.kernel_rules import NEWEST_RULES, parse_version
from fastinit.machine.topology import Node, Topology

# Real firmware maps have tens of ranges, boot logs a few hundred reservations at most.
MAX_RANGES = 4096
MAX_NOTES = 256
MAX_TEXT = 4096
KERNELS = ("stream", "plain")


def descriptor_layout() -> dict:
    """What the bytes of a descriptor mean; files must match it exactly to be read."""
    return {
        "page_dtype": [[name, PAGE_DTYPE.fields[name][0].str, PAGE_DTYPE.fields[name][1]]
                       for name in PAGE_DTYPE.names],
        "page_itemsize": PAGE_DTYPE.itemsize,
        "pages_per_section": PAGES_PER_SECTION,
        "pageblocks_per_section": PAGEBLOCKS_PER_SECTION,
        "zones_pgshift": ZONES_PGSHIFT,
        "vmemmap_start": VMEMMAP_START,
    }


def topology_to_json(topology: Topology) -> dict:
    # The command line is kept for its kernelcore=/movablecore=, which shape the zones.
    return {"source": topology.source, "notes": list(topology.notes),
            "reserved": [list(r) for r in topology.reserved],
            "nodes": [{"nid": n.nid, "cpus": n.cpus, "ranges": [list(r) for r in n.ranges]}
                      for n in topology.nodes],
            "cmdline": topology.cmdline.text,
            # The kernel generation modelled (its rules decide reservations and jobs).
            "linux": topology.kernel.version, "linux_from_log": topology.kernel.from_log,
            "linux_point": topology.kernel.patch}


def topology_fingerprint(topology: Topology) -> str:
    """SHA-256 of what decides the descriptors: node ids, memory ranges, reserved memory,
    where ZONE_MOVABLE starts.

    CPU counts and the source's name are left out: they change threads, not results.
    """
    facts = {"nodes": [[n.nid, [list(r) for r in n.ranges]] for n in topology.nodes],
             "reserved": [list(r) for r in topology.reserved]}
    if topology.movable_start:  # only then: machines without a movable zone keep their print
        facts["movable"] = sorted(topology.movable_start.items())
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def page_metadata(plan, kernel: str) -> dict:
    """The metadata a page memmap file stores for ``plan`` (a BootPlan)."""
    meta = {
        "layout": descriptor_layout(),
        "topology": topology_to_json(plan.topology),
        "fingerprint": topology_fingerprint(plan.topology),
        "arch": plan.arch,
        "threads": [node.max_threads for node in plan.nodes],
        "kernel": kernel,
        "sections": len(plan.sections),
        "zones": [[node.nid, zone.zid] for node in plan.nodes for zone in node.zones],
    }
    if plan.pools is not None and plan.pools.counts():
        # The command line in the topology asks for them; this says what they hold.
        meta["hugepages"] = pool_counts(plan)
    if len(plan.nodes) < len(plan.topology.memory_nodes):
        # One node's shard (`BootPlan.shard`): the file holds that node's sections only.
        meta["node"] = plan.nodes[0].nid
    return meta


def pool_counts(plan) -> list[list[int]]:
    """``[nid, order, pages]`` of every HugeTLB boot pool the plan makes, sorted."""
    counts = plan.pools.counts() if plan.pools is not None else {}
    return sorted([nid, order, pages] for nid, sizes in counts.items()
                  for order, pages in sizes.items())


def field(document: dict, key: str, kind: type, what: str = "metadata"):
    """``document[key]``, which must exist and be exactly of ``kind`` (bool is no int)."""
    if not isinstance(document, dict) or key not in document:
        raise ValueError(f"{what} lacks {key!r}")
    value = document[key]
    if type(value) is not kind:
        raise ValueError(f"{what} field {key!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def _text(value, what: str) -> str:
    if type(value) is not str or len(value) > MAX_TEXT:
        raise ValueError(f"{what} is not a string of at most {MAX_TEXT} characters")
    return value


def _ranges(value, what: str, budget: list[int]) -> tuple[tuple[int, int], ...]:
    if type(value) is not list or len(value) > budget[0]:
        raise ValueError(f"{what} is not a list of at most {MAX_RANGES} ranges in all")
    budget[0] -= len(value)
    result = []
    for item in value:
        if type(item) is not list or len(item) != 2:
            raise ValueError(f"{what} holds {str(item)[:40]}, not a [start, end] pair")
        start = header_int(item[0], 0, MAX_PFN, f"a start pfn in {what}")
        end = header_int(item[1], 0, MAX_PFN, f"an end pfn in {what}")
        result.append((start, end))
    return tuple(result)


def topology_from_json(document) -> Topology:
    """The machine a file was written for; ValueError naming the first bad field."""
    budget = [MAX_RANGES]
    source = _text(field(document, "source", str, "topology"), "topology source")
    notes = field(document, "notes", list, "topology")
    if len(notes) > MAX_NOTES:
        raise ValueError(f"topology has {len(notes)} notes, more than {MAX_NOTES}")
    notes = tuple(_text(note, "a topology note") for note in notes)
    reserved = _ranges(field(document, "reserved", list, "topology"), "reserved", budget)
    listed = field(document, "nodes", list, "topology")
    if not 0 < len(listed) <= MAX_NUMNODES:
        raise ValueError(f"topology has {len(listed)} nodes, not 1..{MAX_NUMNODES}")
    nodes = []
    for entry in listed:
        nid = header_int(field(entry, "nid", int, "a node"), 0, MAX_NUMNODES - 1, "a node id")
        cpus = header_int(field(entry, "cpus", int, f"node {nid}"), 0, NR_CPUS,
                          f"node {nid}'s CPUs")
        ranges = _ranges(field(entry, "ranges", list, f"node {nid}"), f"node {nid} ranges",
                         budget)
        nodes.append(Node(nid, cpus, ranges))
    cmdline = parse_cmdline(_text(field(document, "cmdline", str, "topology"),
                                  "the kernel command line"))
    # Files written before the rules existed were modelled as the newest kernel.
    linux = document.get("linux", "newest")
    kernel = NEWEST_RULES if linux == "newest" else parse_version(
        _text(linux, "the Linux version"), from_log=document.get("linux_from_log") is True,
        patch=_point(document.get("linux_point")))
    return Topology(tuple(nodes), reserved, source, notes, cmdline,  # checks consistency
                    kernel=kernel)


def check_page_metadata(document, arch_profiles) -> tuple[Topology, dict]:
    """Check a page memmap file's metadata; returns the machine and the metadata.

    Everything that is not the topology is checked against what this fastinit writes;
    the plan-dependent fields (``sections``, ``zones``, ``threads``) are checked by
    `check_against_plan` once the plan is made.
    """
    if not isinstance(document, dict):
        raise ValueError("metadata is not an object")
    if field(document, "layout", dict) != json.loads(json.dumps(descriptor_layout())):
        raise ValueError("descriptors of another layout")
    topology = topology_from_json(field(document, "topology", dict))
    if field(document, "fingerprint", str) != topology_fingerprint(topology):
        raise ValueError("topology fingerprint mismatch")
    if field(document, "arch", str) not in arch_profiles:
        raise ValueError(f"arch {document['arch'][:40]!r} is not one of "
                         f"{', '.join(arch_profiles)}")
    if field(document, "kernel", str) not in KERNELS:
        raise ValueError(f"kernel {document['kernel'][:40]!r} is not one of "
                         f"{', '.join(KERNELS)}")
    sections = header_int(field(document, "sections", int), 0, MAX_PFN // PAGES_PER_SECTION,
                          "sections")
    # Before planning the machine (a claimed 4 PiB costs a second): its memory (one
    # node's, for a node's shard) must fit in the sections the file holds.
    pages, whose = topology.present_pages, "machine"
    if "node" in document:
        nid = header_int(document["node"], 0, MAX_NUMNODES - 1, "node")
        pages, whose = topology.node(nid).present_pages, f"node {nid}"
    if pages > sections * PAGES_PER_SECTION:
        raise ValueError(f"the {whose}'s {pages} pages do not fit in the "
                         f"{sections} sections the file holds")
    threads = field(document, "threads", list)
    if len(threads) > MAX_NUMNODES:
        raise ValueError("threads lists more nodes than a machine has")
    for count in threads:
        header_int(count, 1, NR_CPUS, "a thread count")
    zones = field(document, "zones", list)
    if len(zones) > 4 * MAX_NUMNODES or any(type(z) is not list or len(z) != 2 for z in zones):
        raise ValueError("zones is not a list of [nid, zid] pairs")
    return topology, document


def check_against_plan(document: dict, plan) -> None:
    """The fields that the machine decides must be what planning it gives."""
    if document["sections"] != len(plan.sections):
        raise ValueError(f"sections says {document['sections']}, the machine has "
                         f"{len(plan.sections)}")
    if len(document["threads"]) != len(plan.nodes):
        raise ValueError(f"threads lists {len(document['threads'])} nodes, the machine "
                         f"has {len(plan.nodes)} with memory")
    expected = [[node.nid, zone.zid] for node in plan.nodes for zone in node.zones]
    if document["zones"] != expected:
        raise ValueError("zones are not the machine's zones")
    if document.get("hugepages", []) != pool_counts(plan):
        raise ValueError("hugepages are not the pools the machine's command line makes")


def _point(value) -> int | None:
    """A file's stable point release (kernel rules' ``patch``): None when absent or not a
    plain count (files written before it was kept)."""
    return value if type(value) is int and 0 < value < 100_000 else None
