"""Why a fastinit memmap file cannot be used: one ValueError subclass per kind of refusal.

They are ValueErrors so the command line reports them as bad input (exit 2) with the
message alone; `IncompleteMemmapError` and `DamagedMemmapError` mean the file exists and
is ours but must not be trusted (the command line's verify exits 1 for them).
"""


class MemmapFileError(ValueError):
    """A path or file that cannot be used: not ours, not a regular file, damaged, or
    written for something else. The message names the path, the problem and the fix."""


class IncompleteMemmapError(MemmapFileError):
    """A memmap file whose writer did not finish: its data must not be trusted."""


class DamagedMemmapError(MemmapFileError):
    """A complete memmap file whose data no longer matches the checksum written at
    completion, or whose contents break the rules of its kind."""


class MemmapBusyError(MemmapFileError):
    """Another fastinit process is writing (or reading) the same path right now."""


class MemmapChangedError(MemmapFileError):
    """Another process truncated a memmap file, or opened it for writing, while fastinit
    read it (see `fastinit.arrays.lease`): what was read cannot be trusted."""
