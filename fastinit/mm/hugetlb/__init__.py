"""HugeTLB boot pools and HVO, one subsystem: their plan (`plan`: gigantic pages from
memblock; `buddy_plan`: 2 MiB pages from the buddy allocator), the pool jobs on the padata
engine (`jobs`, with what they share in `state`), HVO's remapping of the memmap (`hvo`),
their checks (`verify`, `verify_descriptors`); their report is `fastinit.report.hugetlb`.

Nothing is imported here: the pool kernels cost seconds to compile, and a boot without
pools must not pay for them (tests/test_layers.py holds that).
"""
