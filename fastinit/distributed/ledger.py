"""The runner's books for one distributed boot: which nodes wait for which worker, and
the bytes each worker and each computer holds for the nodes running there.

A worker starts its next node only while the shards it runs fit its budget together, and
workers on one computer share its free memory, whatever their limits say (the first node
on an idle worker or computer always starts: placement checked that it fits alone).
A worker that dies takes its books with it; the nodes that waited for it are placed on
the workers left.
"""

from __future__ import annotations

from fastinit.distributed.placement import place


def host_of(address: str) -> str:
    """The computer of a worker address (``tcp://10.0.0.5:40123`` -> ``10.0.0.5``)."""
    return address.split("://")[-1].rsplit(":", 1)[0]


class Ledger:
    """Queued nodes per worker, bytes held per worker and per computer."""

    def __init__(self, nbytes: dict[int, int], identities: dict[str, dict]):
        self.nbytes = nbytes
        self.budgets: dict[str, int] = {}
        self.host_room: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.host_held: dict[str, int] = {}
        self.queues: dict[str, list[int]] = {}
        for address, info in identities.items():
            self.add_worker(address, info)
        placement = place(nbytes, self.budgets)
        for address in self.budgets:
            self.queues[address] = self._largest_first(placement.on(address))

    def _largest_first(self, nids) -> list[int]:
        return sorted(nids, key=lambda nid: (-self.nbytes[nid], nid))

    def add_worker(self, address: str, info: dict) -> None:
        """A worker (checked) joins with its `fastinit.distributed.worker.identity`."""
        host = host_of(address)
        self.budgets[address], self.held[address] = info["budget"], 0
        self.queues.setdefault(address, [])
        self.host_room[host] = max(self.host_room.get(host, 0), info["host_room"])
        self.host_held.setdefault(host, 0)

    def fits(self, address: str, nid: int) -> bool:
        """Whether ``nid`` may start on ``address`` beside what runs there now."""
        host, size = host_of(address), self.nbytes[nid]
        return (self.held[address] == 0 or self.held[address] + size <=
                self.budgets[address]) and \
            (self.host_held[host] == 0 or self.host_held[host] + size <=
             self.host_room[host])

    def holds_all(self) -> bool:
        """Whether every queued node can run at once, each worker's and each computer's
        together (a worker or computer with one node always can)."""
        hosts: dict[str, list[int]] = {}
        for address, queue in self.queues.items():
            sizes = [self.nbytes[nid] for nid in queue]
            hosts.setdefault(host_of(address), []).extend(sizes)
            if len(sizes) > 1 and self.held[address] + sum(sizes) > self.budgets[address]:
                return False
        return all(len(sizes) <= 1 or self.host_held[host] + sum(sizes) <=
                   self.host_room[host] for host, sizes in hosts.items())

    def startable(self) -> list[tuple[int, str]]:
        """Take every queued node that fits now off its queue, as started: ``[(nid,
        address)]``."""
        started = []
        for address, queue in self.queues.items():
            while queue and self.fits(address, queue[0]):
                nid = queue.pop(0)
                self.hold(address, nid)
                started.append((nid, address))
        return started

    def hold(self, address: str, nid: int) -> None:
        self.held[address] += self.nbytes[nid]
        self.host_held[host_of(address)] += self.nbytes[nid]

    def release(self, address: str, nid: int) -> None:
        """``nid`` finished on ``address``: its shard is gone."""
        self.held[address] -= self.nbytes[nid]
        self.host_held[host_of(address)] -= self.nbytes[nid]

    def lose(self, address: str) -> list[int]:
        """The worker at ``address`` is gone, and its shards with it; returns the nodes
        that were waiting for it."""
        self.budgets.pop(address, None)
        self.host_held[host_of(address)] -= self.held.pop(address, 0)
        return self.queues.pop(address, [])

    def requeue(self, orphans: list[int], live: set[str]) -> None:
        """Place nodes that waited for a lost worker on the ``live`` workers."""
        if orphans:
            room = self.room(live)
            for nid, address in place({n: self.nbytes[n] for n in orphans}, room,
                                      placed=self.held).workers.items():
                self.queues[address].append(nid)

    def room(self, live: set[str]) -> dict[str, int]:
        """The budgets of the ``live`` workers the ledger knows."""
        return {address: self.budgets[address] for address in live
                if address in self.budgets}

    def place_again(self, nid: int, live: set[str], failed_on: dict[int, set[str]]) -> str:
        """A worker for ``nid``, booted again, away from where it was lost; held."""
        address = place({nid: self.nbytes[nid]}, self.room(live), exclude=failed_on,
                        placed=self.held).workers[nid]
        self.hold(address, nid)
        return address
