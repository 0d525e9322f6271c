"""The boot's padata jobs follow the kernel generation modelled (kernel_rules): deferred init
as one job per node since 6.18, one per free range before; HugeTLB pools serial before
6.9."""

from dataclasses import replace

from fastinit.layout import PAGES_PER_SECTION
from fastinit.machine.kernel_rules import parse_version
from fastinit.machine.spec import parse_spec
from fastinit.machine.topology import subtract
from fastinit.mm.plan import plan_boot

# 3 GiB on one node, a reservation in the middle of the deferred range (a crashkernel).
RESERVED = (600_000, 640_000)


def _plan(version: str):
    topology = parse_spec("1x3G,cpus=4", kernel=parse_version(version))
    topology = replace(topology, reserved=topology.reserved + (RESERVED,))
    return plan_boot(topology, "x86", None)


def test_newest_kernel_runs_one_job_per_node():
    plan = _plan("6.18")
    node = plan.nodes[0]
    assert plan.deferred_jobs(0) == [node.job]


def test_older_kernel_runs_one_job_per_free_range_each_to_a_section_end():
    plan = _plan("6.1")
    node = plan.nodes[0]
    jobs = plan.deferred_jobs(0)
    assert len(jobs) == 2
    assert jobs[0][0] == node.first_deferred_pfn and jobs[-1][1] == node.job[1]
    assert all(end % PAGES_PER_SECTION == 0 for _, end in jobs)
    # The jobs do not overlap and cover every free page of the deferred range.
    assert all(a[1] <= b[0] for a, b in zip(jobs, jobs[1:]))
    free = [tuple(r) for r in plan.free_ranges(0, node.first_deferred_pfn,
                                                 node.deferred_zone.end_pfn).tolist()]
    assert subtract(free, jobs) == []
    # The second job starts at the first free page after the reservation.
    assert jobs[1][0] == RESERVED[1]


def test_older_kernels_jobs_boot_and_verify_and_report_every_chunk():
    from fastinit.mm.run import boot
    from fastinit.mm.verify import verify
    topology = replace(parse_spec("1x3G,cpus=4", kernel=parse_version("6.1")),
                       reserved=(RESERVED,))
    result = boot(topology, threads=4)
    assert verify(result).ok
    chunks = result.nodes[0].report.chunks
    jobs = result.plan.deferred_jobs(0)
    # Every chunk lies inside one job, and the chunks cover the jobs.
    assert all(any(s <= a and b <= e for s, e in jobs) for a, b, _ in chunks)
    assert sum(b - a for a, b, _ in chunks) == sum(e - s for s, e in jobs)


def _pool_jobs(version: str):
    from fastinit.mm.run import boot
    topology = parse_spec("2x2G,cpus=2", cmdline="hugepagesz=2M hugepages=64",
                          kernel=parse_version(version))
    return boot(topology).pools.jobs["alloc"]


def test_hugetlb_pools_are_built_by_one_thread_before_6_9_and_by_padata_since():
    from fastinit.engine.workpool import shared_pool
    old = _pool_jobs("6.8")
    assert old.nworks == 1 and len(old.chunks) == 1
    new = _pool_jobs("6.9")
    # 64 pages, min_chunk 64 / 2 nodes / 2 = 16: as many workers as the pool allows, up to 4.
    assert new.nworks == min(4, shared_pool().size)
    assert len(new.chunks) > 1 or shared_pool().size == 1


def test_low_memory_reserved_is_1_mib_since_5_13_and_64_kib_before():
    def free_below_1m(version):
        plan = plan_boot(parse_spec("1x1G,cpus=1", kernel=parse_version(version)), "x86", None)
        return sum(e - s for s, e in plan.free_ranges(0, 0, 256).tolist())
    assert free_below_1m("5.13") == 0
    # Pages 16..158 (64 KiB to 640 KiB; page 159 is the EBDA's) are free before 5.13.
    assert free_below_1m("5.10") == 159 - 16


def test_newest_pools_run_a_quarter_of_the_cpus_and_6_9_two_threads_per_node():
    from fastinit.engine.workpool import shared_pool
    from fastinit.mm.run import boot
    # 2 nodes x 4 CPUs: 7.x runs 8 / 4 = 2 threads; 6.9 up to 2 per node = 4.
    for version, cap in (("7.2", 2), ("6.9", 4)):
        topology = parse_spec("2x2G,cpus=4", cmdline="hugepagesz=2M hugepages=64",
                              kernel=parse_version(version))
        report = boot(topology).pools.jobs["alloc"]
        assert report.nworks == min(cap, shared_pool().size)
