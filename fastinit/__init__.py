"""fastinit: deferred struct page init, padata-style, in user space.

The engine (`Job`, `do_multithreaded`) needs no compiler; the machine model and the Numba
kernels are imported from their modules on first use.
"""

from fastinit.padata import Job, JobCancelled, JobInterrupted, JobReport, do_multithreaded

__version__ = "0.1.0"

__all__ = ["Job", "JobCancelled", "JobInterrupted", "JobReport", "do_multithreaded",
           "__version__"]
