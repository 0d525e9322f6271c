"""Users' own arrays: crash-safe memmap files for any dtype (`create_memmap`, `open_memmap`),
parallel huge-page allocation (`empty`) and streaming fills (`fill`).

Modules: `alloc` (`empty`, `allocation`), `touch` (parallel first touch), `fill` (`fill`),
`records` (which dtypes and record functions fill takes), `fileformat` (the on-disk
format), `memmapfile` (create, open, complete),
`atomic` (write beside, rename when complete), `rename` (renameat2), `locks` (the path's
and the file's flocks), `lease` (a reader's read lease), `checksum` (the data checksum),
`errors` (why a file is refused).
"""

from fastinit.arrays.errors import (DamagedMemmapError, IncompleteMemmapError,
                                    MemmapBusyError, MemmapChangedError, MemmapFileError)
from fastinit.arrays.memmapfile import MemmapFile, create_memmap, open_memmap

__all__ = ["MemmapFile", "create_memmap", "open_memmap", "MemmapFileError",
           "IncompleteMemmapError", "DamagedMemmapError", "MemmapBusyError",
           "MemmapChangedError"]
