"""What a failed cluster boot says of its memmap files: which node files of the boot are
complete (asked of the workers, or, with the scheduler lost, as last seen), which may be,
and the temporary files lost workers left, removed (`fastinit.distributed.memmap_dir`).
"""

from __future__ import annotations

from fastinit.distributed import memmap_dir, registry


def files_left(runner) -> str:
    """After a failure of ``runner``'s boot (a `fastinit.distributed.run._Runner`): which
    node files of this boot are complete, and the temporary files that lost workers
    left, removed."""
    directory = runner.options.get("memmap_dir")
    if not directory:
        return ""
    nids = [node.nid for node in runner.plan.nodes]
    removed, finished = set(), set(runner.finished)
    problems: list[str] = []
    if not runner.lost_scheduler:
        try:
            # The client may not have heard of a node that ended as it failed.
            for nodes in worker_replies(runner.client.run(
                    registry.committed, runner.boot_id, on_error="return"),
                    "could not say which node files it completed", problems):
                finished |= set(nodes)
            for names in worker_replies(runner.client.run(
                    memmap_dir.remove_temporaries, directory, sorted(set(nids) - finished),
                    on_error="return"), "could not remove temporary files", problems):
                removed |= set(names)
        except (OSError, TimeoutError) as error:
            problems.append(f"the workers could not be asked about the node files ({error})")
    unsure = set()
    if runner.lost_scheduler:
        # Seen past its commit: complete. Still running: its worker may have renamed
        # its file into place before it learned of the loss (nobody can ask it now).
        finished |= {nid for nid, phase in runner.phases.items()
                     if phase in registry.COMMITTED_PHASES}
        unsure = set(runner.tasks) - finished
    done = [memmap_dir.node_file_name(nid) for nid in sorted(finished)]
    when = " when it was lost" if runner.lost_scheduler else ""
    said = (f"node files complete from this boot{when}: {', '.join(done)} in "
            f"{directory}" if done else
            f"no node file of this boot was {'known ' if unsure else ''}complete{when}")
    if unsure:
        names = [memmap_dir.node_file_name(nid) for nid in sorted(unsure)]
        said += (f"; {', '.join(names)} {'was' if len(names) == 1 else 'were'} not "
                 f"reported back: each is either complete from this boot (its worker "
                 f"committed it before it saw the scheduler go) or as it was, never "
                 f"half-written (fastinit verify --memmap-dir shows each file's "
                 f"created time)")
    if not done and not unsure:
        said += f"; {directory} keeps what it had"
    elif set(nids) - finished - unsure:
        said += "; the others keep what they had"
    if removed:
        said += f"; removed the temporary files lost workers left for " \
                f"{', '.join(sorted(removed))}"
    return "; ".join([said, *problems])


def worker_replies(replies: dict, failed: str, problems: list[str]) -> list:
    """The answers of ``Client.run(..., on_error="return")`` from the workers that
    answered; for each that raised instead, ``"WORKER FAILED: ERROR"`` goes to
    ``problems`` (a failed cleanup must be said, not dropped: a temporary file it left
    stays on that worker's disk)."""
    answers = []
    for worker, reply in sorted(replies.items()):
        if isinstance(reply, BaseException):
            problems.append(f"{worker} {failed}: {type(reply).__name__}: {reply}")
        else:
            answers.append(reply)
    return answers
