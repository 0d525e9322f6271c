"""Race fuzzing of memmap files (issue 18): header fields rewritten by a racing writer
process while the file is opened, and strange entries planted at the lock and temporary
names. For perf/fuzz_memmap_races.py (>= 50,000 cases) and its slice in the default suite
(tests/test_fuzz_memmap_races.py).

Cases run in batches in a watched worker process (`memmap_fuzz_run.Worker`: a signal,
hang or runaway memory is recorded with the batch's seed); each batch rebuilds its cases
from ``(seed, batch)``. Kinds:

- ``header-race``: a racer process flips one field of the header (NPY header,
  metadata, fixed header) between a random value and the true one, as fast as it can, while
  the worker opens the file and reads it (an array file, or a page memmap file through
  load + verify). Wanted: opened with the right data, or refused naming the file.
- ``lock-name``: a FIFO, directory, symbolic link, socket, device, hard link of the data
  file, or a regular file with contents at ``.NAME.fastinit-lock``; then a read, an
  update in place or a replace. Wanted: done or refused naming the file, and the planted
  entry still there, as it was.
- ``temp-name``: entries at names near the temporary pattern (and at it exactly, of every
  kind); then a replace. Wanted: only exact-pattern regular files, empty or starting with
  our magic, removed; everything else as it was.

A case that loses a file (ours or a planted one) is the failure ``lost``.
"""

from __future__ import annotations

WORKER = r'''
import json, os, random, shutil, socket, stat, struct, subprocess, sys, tempfile, traceback
import numpy as np
from fastinit.arrays import MemmapFileError, create_memmap, open_memmap_file
from fastinit.arrays import fileformat as fmt
from fastinit.arrays.atomic import temp_pattern

RACER = """
import os, sys
os.set_blocking(0, False)
line, todo, fd = b"", None, None
print("ready", flush=True)
while True:
    try:
        chunk = os.read(0, 65536)
    except BlockingIOError:
        chunk = None
    if chunk == b"":
        break
    if chunk:
        line += chunk
        while b"\\n" in line:
            one, line = line.split(b"\\n", 1)
            if todo:
                os.pwrite(fd, todo[2], todo[0])
                os.close(fd)
                todo = None
            if one.strip() != b"stop":
                path, offset, bad = one.split()
                fd = os.open(path, os.O_RDWR)
                offset, bad = int(offset), bytes.fromhex(bad.decode())
                todo = (offset, bad, os.pread(fd, len(bad), offset))
            print("on", flush=True)
    if todo:
        for _ in range(200):
            os.pwrite(fd, todo[1], todo[0])
            os.pwrite(fd, todo[2], todo[0])
"""
work = tempfile.mkdtemp(prefix="race-fuzz-", dir=sys.argv[1])
page = sys.argv[2]  # a complete page memmap file to copy, or ""
MAGIC = fmt.MAGIC

def named(path, error):
    return str(path) in str(error)

def small_file(path, rng):
    dtype = rng.choice(["u1", "<i8", "<f4", [("a", "<i4"), ("b", "S3")]])
    handle = create_memmap(path, dtype, rng.choice([0, 1, 7, 4096, 20000]))
    handle.data[:] = rng.randrange(256)
    handle.complete()
    handle.close()
    return path.read_bytes()

RACERS = []

def the_racer():
    """One racer process for the worker's life (starting one per case cost 0.15 s)."""
    if not RACERS or RACERS[0].poll() is not None:
        RACERS[:] = [subprocess.Popen([sys.executable, "-c", RACER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)]
        assert RACERS[0].stdout.readline().strip() == b"ready"
    return RACERS[0]

def header_race(rng, directory):
    from pathlib import Path
    use_page = page and rng.random() < 0.1
    path = Path(directory) / "h.bin"
    if use_page:
        shutil.copyfile(page, path)
        raw = path.read_bytes()
    else:
        raw = small_file(path, rng)
    at = len(raw) - fmt.HEADER_BYTES  # the fixed header ends the file
    meta_len = struct.unpack_from("<Q", raw, at + 24)[0]
    start = 10 + struct.unpack_from("<H", raw, 8)[0] if raw[6] == 1 else \
        12 + struct.unpack_from("<I", raw, 8)[0]
    end = (start, at - meta_len)  # the data region
    offset = rng.choice([0, 6, 8, 16, *(at + k for k in (0, 16, 20, 24, 32, 64, 72, 96)),
                         rng.randrange(start), rng.randrange(at - meta_len, len(raw))])
    size = rng.choice([1, 2, 4, 8, 16])
    size = max(1, min(size, len(raw) - offset))
    bad = rng.choice([bytes(size), b"\xff" * size, rng.randbytes(size),
                      (1 << 40).to_bytes(8, "little")[:size],
                      (meta_len + rng.choice([-1, 1, 4096])).to_bytes(8, "little")[:size]])
    racer = the_racer()
    try:
        racer.stdin.write(b"%s %d %s\n" % (str(path).encode(), offset, bad.hex().encode()))
        racer.stdin.flush()
        assert racer.stdout.readline().strip() == b"on"
        outcomes = []
        for _ in range(5):
            outcomes.append(read_once(path, use_page, raw, end))
    finally:
        racer.stdin.write(b"stop\n")
        racer.stdin.flush()
        assert racer.stdout.readline().strip() == b"on"
    if path.read_bytes() != raw:
        return "lost", f"{path} changed after the racer restored it"
    return sorted(outcomes, key=lambda o: o[0] != "opened")[0]

def read_once(path, use_page, raw, end):
    try:
        if use_page:
            from fastinit.mm.run import load
            from fastinit.mm.verify import verify
            result = load(str(path))
            verify(result)
            result.memmap.file.handle.close()
        else:
            with open_memmap_file(path) as handle:
                if handle.data.tobytes() != raw[end[0]:end[1]]:
                    return "traceback", "opened, with other data than the file holds"
        return "opened", ""
    except MemmapFileError as error:
        return ("refused" if named(path, error) else "unnamed"), str(error)[:300]

def plant(rng, where, kind, data_path):
    if kind == "fifo":
        os.mkfifo(where)
    elif kind == "dir":
        os.mkdir(where)
        open(os.path.join(where, "inside"), "wb").write(b"theirs")
    elif kind == "symlink-data":
        os.symlink(data_path, where)
    elif kind == "symlink-dangling":
        os.symlink(where + ".nowhere", where)
    elif kind == "socket":
        server, here = socket.socket(socket.AF_UNIX), os.getcwd()
        os.chdir(os.path.dirname(where))  # AF_UNIX paths are short: bind the name alone
        try:
            server.bind(os.path.basename(where))
        finally:
            os.chdir(here)
            server.close()
    elif kind == "chardev":
        os.mknod(where, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    elif kind == "hardlink-data":
        os.link(data_path, where)
    elif kind == "regular-data":
        open(where, "wb").write(b"their notes " + rng.randbytes(rng.randrange(64)))
    elif kind == "regular-magic":
        open(where, "wb").write(MAGIC + rng.randbytes(rng.randrange(64)))
    elif kind == "regular-empty":
        open(where, "wb").close()

def snapshot(where):
    try:
        info = os.lstat(where)
    except FileNotFoundError:
        return None
    data = open(where, "rb").read() if stat.S_ISREG(info.st_mode) else None
    return (info.st_ino, info.st_mode, info.st_rdev, data)

LOCK_KINDS = ["fifo", "dir", "symlink-data", "symlink-dangling", "socket", "chardev",
              "hardlink-data", "regular-data", "regular-empty"]

def act(rng, path):
    how = rng.choice(["read", "update", "replace"])
    try:
        if how == "read":
            open_memmap_file(path).close()
        elif how == "update":
            handle = open_memmap_file(path, "r+")
            handle.array[...] = handle.array
            handle.complete()
            handle.close()
        else:
            small_file_force(path, rng)
        return "done", ""
    except MemmapFileError as error:
        return ("refused" if named(path, error) else "unnamed"), str(error)[:300]

def small_file_force(path, rng):
    handle = create_memmap(path, "u1", rng.choice([1, 100]), force=True)
    handle.array[:] = 3
    handle.complete()
    handle.close()

def lock_name(rng, directory):
    from pathlib import Path
    path = Path(directory) / "f.bin"
    small_file(path, rng)
    kind = rng.choice(LOCK_KINDS if os.geteuid() == 0 else LOCK_KINDS[:5] + LOCK_KINDS[6:])
    where = os.path.join(directory, ".f.bin.fastinit-lock")
    plant(rng, where, kind, str(path))
    before = snapshot(where)
    outcome = act(rng, path)
    after = snapshot(where)
    if kind == "regular-empty" and after is None:
        pass  # an empty lock file is ours to remove
    elif kind == "hardlink-data" and after is not None and after[:3] == before[:3]:
        pass  # the data file itself: written in place by an update, as asked
    elif after != before:
        return "lost", f"{kind} at the lock name: {before} -> {after}"
    if kind == "dir" and open(os.path.join(where, "inside"), "rb").read() != b"theirs":
        return "lost", "the directory's file changed"
    if after is not None:
        shutil.rmtree(where) if kind == "dir" else os.unlink(where)
    return ok_data(path, outcome)

def ok_data(path, outcome):
    try:
        open_memmap_file(path).close()
    except MemmapFileError as error:
        return "lost", f"{path} no longer opens: {error}"
    return outcome

def temp_names(rng, directory):
    from pathlib import Path
    path = Path(directory) / "t.bin"
    small_file(path, rng)
    prefix = ".t.bin.fastinit-tmp-"
    exact = lambda: f"{prefix}{rng.randrange(1, 10**7)}-{rng.randbytes(4).hex()}"
    names = [exact(), exact(), f"{prefix}my-backup", f"{prefix}notes",
             f"{prefix}0{rng.randrange(9)}-{rng.randbytes(4).hex()}",
             f"{prefix}{rng.randrange(99)}-{rng.randbytes(4).hex().upper()}",
             f"{prefix}{rng.randrange(99)}-{rng.randbytes(4).hex()}.bak",
             f"{prefix}{rng.randrange(99)}-{rng.randbytes(3).hex()}",
             f".t.bin.fastinit-tmp{rng.randrange(99)}-{rng.randbytes(4).hex()}",
             f".t.bin2.fastinit-tmp-{rng.randrange(99)}-{rng.randbytes(4).hex()}"]
    kinds = ["regular-data", "regular-magic", "regular-empty", "fifo", "dir",
             "symlink-data", "symlink-dangling"]
    planted = {}
    for name in rng.sample(names, rng.randrange(1, len(names) + 1)):
        where = os.path.join(directory, name)
        kind = rng.choice(kinds)
        plant(rng, where, kind, str(path))
        planted[name] = (kind, snapshot(where))
    outcome = act(rng, path)
    for name, (kind, before) in planted.items():
        after = snapshot(os.path.join(directory, name))
        # Exactly the pattern (a near miss can hit it: upper() of all-digit hex), empty
        # or ours: what a killed fastinit leaves, and cleanup may take.
        ours = bool(temp_pattern("t.bin").fullmatch(name)) and kind in ("regular-magic",
                                                                        "regular-empty")
        if after != before and not (ours and after is None):
            return "lost", f"{kind} at {name}: {before} -> {after}"
    return ok_data(path, outcome)

CASES = {"header-race": header_race, "lock-name": lock_name, "temp-name": temp_names}
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    tally, samples = {}, []
    for index in range(request["count"]):
        rng = random.Random(f"{request['seed']}:{request['batch']}:{index}")
        kind = rng.choices(list(CASES), weights=[4, 3, 3])[0]
        directory = tempfile.mkdtemp(dir=work)
        try:
            outcome, message = CASES[kind](rng, directory)
        except BaseException:
            outcome, message = "traceback", traceback.format_exc()[-1500:]
        shutil.rmtree(directory, ignore_errors=True)
        key = f"{kind}:{outcome}"
        tally[key] = tally.get(key, 0) + 1
        if outcome in ("lost", "traceback", "unnamed") and len(samples) < 5:
            samples.append({"index": index, "kind": kind, "outcome": outcome,
                            "message": message})
    print(json.dumps({"outcome": "batch", "tally": tally, "samples": samples,
                      "seconds": 0.0, "peak": 0, "message": ""}), flush=True)
'''

FAILURES = ("lost", "traceback", "unnamed", "signal", "hang", "memory")


def campaign(directory, count: int, seed: int, page_file: str = "", batch: int = 100,
             seconds: float = 600.0, memory: int = 4 << 30, report_every: int = 0) -> dict:
    """Run ``count`` cases in batches; returns the tallies and failure samples."""
    import json
    import time
    from collections import Counter
    from memmap_fuzz_run import Worker
    worker = Worker(seconds, memory, script=WORKER, argv=[str(directory), page_file])
    tally, samples, began, done = Counter(), [], time.monotonic(), 0
    try:
        for number in range((count + batch - 1) // batch):
            size = min(batch, count - done)
            result = worker.ask(json.dumps({"seed": seed, "batch": number, "count": size}))
            done += size
            if result["outcome"] != "batch":  # the worker died or hung: the whole batch
                tally[f"batch:{result['outcome']}"] += size
                samples.append({"batch": number, "seed": seed, **result})
                continue
            tally.update(result["tally"])
            samples += [{"batch": number, "seed": seed, **s} for s in result["samples"]]
            if report_every and done % report_every < batch:
                print(f"{done} cases, {time.monotonic() - began:.0f} s", flush=True)
    finally:
        worker.close()
    failures = sum(n for key, n in tally.items() if key.split(":")[1] in FAILURES)
    return {"count": count, "seed": seed, "seconds": time.monotonic() - began,
            "tally": dict(sorted(tally.items())), "failures": failures,
            "samples": samples[:50]}
