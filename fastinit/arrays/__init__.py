"""Users' own arrays: crash-safe memmap files for any dtype, which NumPy opens too
(`create_memmap`, `open_memmap` as NumPy spells it, `open_memmap_file` for the handle),
parallel huge-page allocation (`empty`) and streaming fills (`fill`).

Modules: `alloc` (`empty`, `allocation`), `touch` (parallel first touch), `fill` (`fill`),
`records` (which dtypes and record functions fill takes), `fileformat` (the on-disk
format), `npyheader` (its NumPy header), `dtypes` (dtypes as JSON), `create_open` (create,
open, complete), `npymemmap` (`open_memmap` with NumPy's modes),
`atomic` (write beside, rename when complete), `rename` (renameat2), `locks` (the path's
and the file's flocks), `lease` (a reader's read lease), `checksum` (the data checksum),
`errors` (why a file is refused).
"""

from fastinit.arrays.errors import (DamagedMemmapError, IncompleteMemmapError,
                                    MemmapBusyError, MemmapChangedError, MemmapFileError)
from fastinit.arrays.create_open import MemmapFile, create_memmap, open_memmap_file
from fastinit.arrays.npymemmap import open_memmap

__all__ = ["MemmapFile", "create_memmap", "open_memmap", "open_memmap_file", "MemmapFileError",
           "IncompleteMemmapError", "DamagedMemmapError", "MemmapBusyError",
           "MemmapChangedError"]
