"""One thread per node (``pgdatinit<nid>``), as the kernel starts them: all started at
once (Ctrl-C held until every thread is ours), waited for through Ctrl-C, and the first
error that stopped the boot returned, not the cancellations it caused in other nodes.
`fastinit.mm.deferred` runs each node's deferred init on them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastinit.engine.interrupts import ctrl_c_held
from fastinit.engine.padata import JobCancelled
from fastinit.mm.plan import NodePlan


def run_node_threads(nodes: list[NodePlan], target: Callable[[NodePlan], None],
                     cancel: threading.Event) -> tuple[int, BaseException] | None:
    """Run ``target(node)`` on one thread per node (``pgdatinit<nid>``), all started at
    once, and wait for every one of them.

    A node that fails sets ``cancel``, so the others stop. Ctrl-C sets it too, waits for
    every thread and is re-raised.

    Returns
    -------
    (nid, error) or None
        The first node's error that was not a cancellation it caused, or None.
    """
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()

    def pgdatinit(node: NodePlan, finished: threading.Event) -> None:
        try:
            target(node)
        except BaseException as error:  # recorded and re-raised on the boot's thread
            with lock:
                errors.append((node.nid, error))
            cancel.set()
        finally:
            finished.set()

    finished = [threading.Event() for _ in nodes]
    threads = [threading.Thread(target=pgdatinit, args=(node, done), name=f"pgdatinit{node.nid}")
               for node, done in zip(nodes, finished)]
    # A node may run chunks while the next starts: hold Ctrl-C until every thread is ours.
    with ctrl_c_held() as held_ctrl_c:
        for thread in threads:
            thread.start()
    try:
        if held_ctrl_c:
            raise KeyboardInterrupt
        _wait_all(finished)
    except KeyboardInterrupt:
        cancel.set()
        _wait_all(finished, through_ctrl_c=True)
        raise
    finally:
        for thread in threads:
            thread.join()  # each has finished its work; this only waits for it to exit
    return _first_real_error(errors) if errors else None


def _wait_all(finished: list[threading.Event], through_ctrl_c: bool = False) -> None:
    """Wait until every node's thread has finished its work.

    Waiting on events, not ``Thread.join()``: Python 3.11 marks a thread stopped when a
    Ctrl-C interrupts joining it, although it still runs. The short timeout lets Ctrl-C
    through even when the signal was taken on another thread.
    """
    for event in finished:
        while not event.is_set():
            try:
                event.wait(0.1)
            except KeyboardInterrupt:
                if not through_ctrl_c:
                    raise


def _first_real_error(errors: list[tuple[int, BaseException]]) -> tuple[int, BaseException]:
    """The error that stopped the boot, not the cancellations it caused in other nodes."""
    for nid, error in errors:
        if not isinstance(error, JobCancelled):
            return nid, error
    return errors[0]
