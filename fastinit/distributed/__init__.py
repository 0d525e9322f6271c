"""Machines whose memmap no single computer holds: one NUMA node per dask worker.

Each node's shard (its memmap and zones, `fastinit.mm.plan.BootPlan.shard`) is booted,
kept and verified on one worker; only plans, summaries and digests cross the network.
Needs the ``distributed`` extra (``pip install 'fastinit[distributed]'``); importing this
package does not import dask.
"""
