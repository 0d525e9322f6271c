"""The oracle's HugeTLB layouts (qemu_oracle/hugepages.py): reproducible, every one asking
for boot pools the kernel can take, never more than the machine can spare to boot."""

import json

import qemu_oracle as qo
from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.hugetlb_params import parse_hugetlb
from qemu_oracle.generate import MAX_GUEST_MIB, MIN_GUEST_MIB
from qemu_oracle.hugepages import generate_hugepages


def test_hugepage_layouts_are_reproducible_and_valid_machines():
    for seed in range(300):
        layout = generate_hugepages(seed)
        assert layout == generate_hugepages(seed)
        assert MIN_GUEST_MIB <= layout.mem_mib <= MAX_GUEST_MIB
        if layout.nodes:
            assert sum(n.mem_mib for n in layout.nodes) == layout.mem_mib
            assert sorted(c for n in layout.nodes for c in n.cpus) == list(range(layout.smp))
        assert qo.Layout.from_json(json.loads(layout.dumps())) == layout


def test_every_layout_asks_for_pools_and_leaves_memory_to_boot():
    kinds = set()
    for seed in range(300):
        layout = generate_hugepages(seed)
        nodes = range(max(len(layout.nodes), 1))
        params = parse_hugetlb(parse_cmdline(" ".join(layout.options)), nodes,
                               gbpages=layout.cpu == "max")
        asked = {r.order: r.count for r in params.hstates}
        # Every layout has a count (zero now and then, as in "1:0": a form the kernel takes).
        assert any(option.startswith("hugepages=") for option in layout.options)
        spread = {r.order: r.count for r in params.hstates if not r.nodes}
        # 2 MiB pages spread over the nodes take at most 70% of the memory; 1 GiB pages
        # a third, or one page (memblock refuses what does not fit, harmlessly).
        assert spread.get(9, 0) * 2 <= layout.mem_mib * 0.7, layout.describe()
        assert spread.get(18, 0) <= max(1, layout.mem_mib // 3072), layout.describe()
        kinds |= {order for order, count in asked.items() if count}
        kinds |= {"per node"} if any(r.nodes for r in params.hstates) else set()
        kinds |= {"hvo"} if params.free_vmemmap else set()
    assert kinds >= {9, 18, "per node", "hvo"}
