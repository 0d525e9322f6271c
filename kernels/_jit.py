"""The one decorator every fastinit kernel uses, with each compiler option set once.

Kernels are compiled eagerly, at import, for the exact signatures they declare: compiling
happens on the importing (main) thread before any helper thread can call a kernel (Numba
serializes compilation under a global lock), and a call with the wrong dtype or layout
fails at the call instead of silently compiling a slower specialization.

Helpers that kernels compile into their own code (``descriptors.py``, the buddy merge loop) are
registered with `inline_helper` or `loop_helper` instead: they are not kernels of their own.

Compiled code is cached on disk in fastinit's own folder, keyed on every file a kernel
depends on (``_cache.py``): editing the layout or a helper recompiles the kernels, and
other libraries' Numba caches are left where Numba puts them. The install fills that
cache (``_precompile.py``), so the first command runs warm.
"""

from __future__ import annotations

import numba
from numba import types
from numba.core import typeinfer
from numba.core.errors import NumbaValueError
from numba.core.typing import typeof as typeof_module
from numba.extending import register_jitable

from fastinit.kernels._cache import generated_cache, kernel_cache
from fastinit.layout import PAGE_DTYPE

# Descriptor arrays are always C-contiguous 1-D arrays of the aligned 64-byte record.
PAGES = numba.from_dtype(PAGE_DTYPE)[::1]
PFNS = types.int64[::1]
PFN_RANGES = types.int64[:, ::1]
COUNTS = types.int64[:, ::1]
PAGEBLOCK_TYPES = types.uint8[::1]
# Local free lists of one call (see fastinit.kernels.descriptors).
LISTS = types.int64[:, :, ::1]
# What verify reads and never writes (a memmap file is mapped read-only).
RO_PAGES = types.Array(numba.from_dtype(PAGE_DTYPE), 1, "C", readonly=True)
RO_WORDS = types.Array(types.uint64, 1, "C", readonly=True)
RO_PAGEBLOCK_TYPES = types.Array(types.uint8, 1, "C", readonly=True)
RO_PFNS = types.Array(types.int64, 1, "C", readonly=True)
RO_PFN_RANGES = types.Array(types.int64, 2, "C", readonly=True)
RO_U64 = types.Array(types.uint64, 1, "C", readonly=True)

_OPTIONS = dict(
    # Compiled code only; object mode would hold the GIL and be 100x slower.
    nopython=True,
    # Helper threads run kernels concurrently; kernels touch no Python objects.
    nogil=True,
    # Kernels trust their input (the Python layer validates); NUMBA_BOUNDSCHECK=1 in the
    # environment still turns checks on for a test run.
    boundscheck=False,
    # Integer division by zero is impossible after validation; skip the exception branch.
    error_model="numpy",
)


def kernel(*signatures, parallel: bool = False):
    """Compile a kernel eagerly for ``signatures`` with fastinit's options.

    Parameters
    ----------
    *signatures : numba signatures
        The exact types the kernel accepts, e.g. ``types.int64(PAGES, types.int64)``.
    parallel : bool
        Only for the ``numba.prange`` peer that benchmarks compare against: fastinit's own
        kernels are serial and get their threads from the padata engine (a prange kernel
        called from several threads at once can abort under the workqueue layer).
    """
    def decorate(fn):
        dispatcher = numba.jit(parallel=parallel, **_OPTIONS)(fn)
        # Reuse machine code across processes (a warm start costs milliseconds, not
        # seconds), from our own cache: Numba's cache=True would key it on this file alone.
        _compile_cached(dispatcher, kernel_cache(fn), signatures)
        return dispatcher
    return decorate


def inline_helper(fn):
    """Register ``fn`` for kernels, where Numba inlines it at every call; Python code calls
    it as it is."""
    return register_jitable(inline="always")(fn)


def loop_helper(fn):
    """Register ``fn`` (it has a loop) for kernels, where LLVM inlines it as it sees fit:
    Numba's own inlining of loops trips its IR checks (NumbaIRAssumptionWarning).

    Compiled without reference counting (``_nrt=False``): a helper allocates nothing, and
    counting references to the arrays it is given costs two atomic operations per array
    and call (the buddy merge loop ran 15% slower on the local lists with them). A helper
    may take another helper as an argument (a compile-time constant, called directly), but
    not a kernel: a kernel passed as a value is a pointer to a Python object, which keeps
    every caller out of the on-disk cache.
    """
    return register_jitable(_nrt=False)(fn)


def _compile_cached(dispatcher, cache, signatures) -> None:
    """What numba.jit(signatures) does, with ``cache`` (None: none) in place first."""
    if cache is not None:
        dispatcher._cache = cache
    with typeinfer.register_dispatcher(dispatcher):
        for signature in signatures:
            dispatcher.compile(signature)
    dispatcher.disable_compile()
    dispatcher.typeof_pyval = _typeof_argument(dispatcher)


def _typeof_argument(dispatcher):
    """The dispatcher's typing of an argument its native code cannot type (the first call
    with each array type), letting every exception through.

    Numba's own turns any ValueError raised while it types into "an object" and so into
    "No matching definition". A read lease's signal handler
    (`fastinit.arrays.lease`) raises its MemmapChangedError, a ValueError, at whatever
    Python code the main thread runs, this typing included: a truncated file was
    reported as a typing error (exit 2 with Numba's message). Numba's own ValueErrors
    (a value it cannot type: our kernels take none) stay an object, as before.
    """
    active = dispatcher._types_active_call

    def typeof_pyval(value):
        try:
            numba_type = typeof_module.typeof(value, typeof_module.Purpose.argument)
        except (ValueError, NumbaValueError) as error:
            if type(error) not in (ValueError, NumbaValueError):
                raise  # not Numba's: e.g. raised by a signal handler while it typed
            numba_type = None
        numba_type = numba_type or types.pyobject
        active.add(numba_type)
        return numba_type
    return typeof_pyval


def generated_kernel(fn, key: str | None, *signatures):
    """Compile ``fn``, built at run time from generated source, eagerly for ``signatures``.

    The options are `kernel`'s. Numba's own cache cannot hold such a function (it keys
    code on a source file), and a generated kernel calls a function of the user's
    (`fastinit.fill`'s ``record``) whose edits no file stamp would see. So the caller
    passes ``key``, a digest of everything the machine code is compiled from (the source,
    the record function's code and constants, the dtype, our kernels' own key), and the
    code is cached under it across processes; None compiles it for this process only.
    """
    dispatcher = numba.jit(parallel=False, **_OPTIONS)(fn)
    _compile_cached(dispatcher, None if key is None else generated_cache(fn, key),
                    signatures)
    return dispatcher
