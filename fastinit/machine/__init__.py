"""The machine model: NUMA nodes, memory ranges and the zones Linux derives from them, read
from a spec, a kernel boot log (e820, SRAT, command line) or this machine; and the figures
a boot log prints, to check the model against the real kernel."""
