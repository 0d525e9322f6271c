"""Integer rounding and byte amounts, written once for every layer (stdlib only).

The bottom of the tree: the engine (which imports nothing else of ours), the descriptor
layout and everything above use these, so no layer keeps a copy of its own.
"""


def div_up(value, divisor):
    """``value / divisor`` rounded up (the kernel's ``DIV_ROUND_UP()``); ints or arrays."""
    return -(-value // divisor)


def align_up(value, alignment):
    """``value`` rounded up to a multiple of ``alignment`` (the kernel's ``roundup()``)."""
    return div_up(value, alignment) * alignment


def gib(nbytes) -> str:
    """Bytes as messages and reports print them: ``"1.50 GiB"``."""
    return f"{nbytes / 2**30:.2f} GiB"
