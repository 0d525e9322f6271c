"""How fastinit presents what it did: kernel-style lines, tables, JSON and plots.

Above the boot (`fastinit.mm`), its HugeTLB room, the bench and the cluster's results;
nothing below imports it. `boot` prints topologies, boots, verification and memmap files,
`hugetlb` a boot's HugeTLB pools, `cluster` a boot on dask workers (its result types only:
importing it does not import dask), `bench` and `bench_plot` the bench's table and plot.
Nothing is imported here.
"""
