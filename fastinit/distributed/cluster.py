"""Reaching a dask cluster: a LocalCluster on this computer, an address, or a Client.

dask and distributed are an optional extra; without them, asking for a cluster says
which extra to install. An address that does not answer fails within ``timeout``
seconds, naming it. Every worker is checked before any node is placed on it: it must run
this fastinit version with this descriptor layout (a worker of another version would
write other bytes, or none).
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import contextmanager

import fastinit
from fastinit.distributed import worker as on_worker
from fastinit.host.memory import available_memory
from fastinit.validate import check_int

INSTALL = "pip install 'fastinit[distributed]'"
CONNECT_TIMEOUT = 5.0
# A local cluster of more workers than this is a typo, not a plan.
MAX_LOCAL_WORKERS = 256
_LOCAL = re.compile(r"local:(\d+)")


class MissingExtraError(ImportError):
    """dask.distributed is not installed (the ``distributed`` extra)."""


def require_distributed():
    """The ``distributed`` module, or MissingExtraError saying which extra to install."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as error:
        raise MissingExtraError(
            f"a cluster needs dask.distributed, and {error.name or 'it'} is not installed: "
            f"{INSTALL} (conda: conda install -c conda-forge dask distributed)") from None
    return distributed


def _local_shares(workers: int, cpus: list[int]) -> list[list[int]]:
    """This process's CPUs split between ``workers`` local workers (like computers of
    their own: no worker's threads compete with another's)."""
    if workers >= len(cpus):
        return [[cpus[i % len(cpus)]] for i in range(workers)]
    size = len(cpus) // workers
    return [cpus[i * size:(i + 1) * size] for i in range(workers)]


@contextmanager
def connected(cluster, *, timeout: float = CONNECT_TIMEOUT, memory_limit=None):
    """A ``distributed.Client`` for ``cluster``, closed (with the cluster it started) at
    the end.

    Parameters
    ----------
    cluster : str or distributed.Client
        ``"local:N"`` starts a LocalCluster of N worker processes on this computer, each
        kept on its share of the CPUs; ``"tcp://HOST:PORT"`` (or any address dask
        takes) connects to a running scheduler; a Client is used as it is (not closed).
    timeout : float
        Seconds to reach an address and to wait for its first worker.
    memory_limit : str or int or None
        Per worker of a local cluster (default: 90% of the memory available now / N).
    """
    distributed = require_distributed()
    if isinstance(cluster, distributed.Client):
        yield cluster
        return
    if not isinstance(cluster, str):
        raise TypeError(f"cluster must be 'local:N', a scheduler address or a "
                        f"distributed.Client, got {type(cluster).__name__}")
    local = _LOCAL.fullmatch(cluster.strip())
    if local:
        yield from _local(distributed, local.group(1), memory_limit)
        return
    if not re.fullmatch(r"(\w+://)?[\w.\-\[\]:]+:\d+", cluster.strip()):
        raise ValueError(f"cluster {cluster[:80]!r} is neither local:N nor a scheduler "
                         f"address like tcp://HOST:8786")
    try:
        _handshake(cluster.strip(), timeout)
        client = distributed.Client(cluster.strip(), timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        why = str(error) or "it accepts connections but never answers distributed's " \
                            "handshake"
        raise ValueError(f"no dask scheduler answers at {cluster} (waited {timeout:g} s: "
                         f"{why}); start one there with 'dask scheduler' and workers "
                         f"with 'dask worker {cluster}', or check the address") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ValueError(f"the dask scheduler at {cluster} has no workers; start some "
                             f"with 'dask worker {cluster}'") from None
        yield client
    finally:
        _close(client)


def _close(client) -> None:
    """Close ``client``. Once its scheduler is lost, distributed's own close can fail
    (``RuntimeError: Cannot change state of expiring Timeout`` from its connection pool,
    seen with one CPU): that must not replace the error that says the scheduler was lost,
    and there is nothing left to close."""
    try:
        client.close()
    except (OSError, RuntimeError, TimeoutError):
        pass


def _handshake(address: str, timeout: float) -> None:
    """Connect to ``address`` and complete distributed's handshake within ``timeout``
    seconds, or raise OSError or TimeoutError.

    distributed bounds its connect but not the handshake after it (2026.8: the read of
    the scheduler's handshake has no timeout), so a listener that accepts and never
    answers would hold ``Client()`` forever. The probe runs on a thread of its own, with
    its own event loop, so a caller inside a running loop (a notebook) can use it too.
    Only tcp:// is probed: other schemes need the Client's security settings.
    """
    if "://" in address and not address.startswith("tcp://"):
        return
    import asyncio
    from distributed.comm import connect

    async def shake():
        comm = await connect(address, timeout=timeout)
        await comm.close()

    failed: list[BaseException] = []

    def probe():
        try:
            asyncio.run(asyncio.wait_for(shake(), timeout))
        except BaseException as error:  # handed to the caller
            failed.append(error)

    thread = threading.Thread(target=probe, name="fastinit-handshake", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if thread.is_alive():
        raise TimeoutError()
    if failed:
        if isinstance(failed[0], (asyncio.TimeoutError, TimeoutError)):
            raise TimeoutError()
        raise failed[0]


def _local(distributed, count: str, memory_limit):
    import os
    workers = check_int(int(count), "local workers", minimum=1, maximum=MAX_LOCAL_WORKERS,
                        fix="write local:N with N the worker processes to start")
    shares = _local_shares(workers, sorted(os.sched_getaffinity(0)))
    if memory_limit is None:
        # dask's "auto" gives each worker its share of the CPUs' worth of this computer's
        # memory; N workers on fewer CPUs would be promised more than there is in all.
        memory_limit = int(available_memory() * 0.9) // workers
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=len(shares[0]),
                                  processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR,
                                  memory_limit=memory_limit) as local, \
            distributed.Client(local, set_as_default=False) as client:
        client.wait_for_workers(workers)
        for address, cpus in zip(sorted(client.scheduler_info()["workers"]), shares):
            client.run(on_worker.pin_cpus, cpus, workers=[address])
        yield client


def check_workers(client) -> dict[str, dict]:
    """Every worker's identity (`fastinit.distributed.worker.identity`), after checking
    it runs this fastinit with this descriptor layout.

    Raises
    ------
    ValueError
        A worker cannot import fastinit, or runs another version or layout: names the
        worker, what it runs and what to install.
    """
    found = client.run(on_worker.identity, on_error="return")
    if not found:
        raise ValueError("the cluster has no workers; start some with 'dask worker ADDRESS'")
    problems = [problem for address in sorted(found)
                if (problem := worker_problem(address, found[address])) is not None]
    if problems:
        raise ValueError(f"workers must run fastinit {fastinit.__version__} like this "
                         f"client: {'; '.join(problems)}; install the same fastinit on "
                         f"every worker (pip install fastinit=={fastinit.__version__})")
    return found


def worker_problem(address: str, what) -> str | None:
    """Why the worker at ``address`` must not boot this client's nodes, or None.

    ``what`` is its `fastinit.distributed.worker.identity`, or the exception it raised.
    """
    if isinstance(what, BaseException):
        return f"{address} cannot run fastinit ({type(what).__name__}: {what})"
    if what["fastinit"] != fastinit.__version__:
        return f"{address} runs fastinit {what['fastinit']}"
    if what.get("layout") != on_worker.layout_print():
        return f"{address} has another descriptor layout"
    return None
