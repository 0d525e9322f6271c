"""Two intrinsics for writing records byte-exactly: a value's bits, and an unaligned store.

The fill kernels (`fastinit.kernels.fill`) build each 64-byte line of records as eight
uint64 words in registers and stream it with `store_record_nt`. To put a field into a word
they need the field's bytes as they lie in memory (a float's bit pattern, a negative int8
as 0xFF), which Numba can only give through a cast that changes the value: `raw_bits`
reinterprets instead. Records that do not fill a whole aligned line (the array's head and
tail, or an array whose address makes lines impossible) are written by `store_unaligned`,
which makes no alignment promise to the CPU.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def raw_bits(typingctx, value):
    """The bytes of a scalar as stored in memory, zero-extended to a uint64.

    Booleans give 0 or 1 (NumPy stores them as one byte), integers their two's complement
    bits, floats their IEEE bit pattern. Anything else does not type.
    """
    if not isinstance(value, (types.Boolean, types.Integer, types.Float)):
        return None
    if isinstance(value, (types.Integer, types.Float)) and value.bitwidth > 64:
        return None

    def codegen(context, builder, sig, args):
        (argument,) = args
        word = ir.IntType(64)
        kind = sig.args[0]
        if isinstance(kind, types.Float):
            argument = builder.bitcast(argument, ir.IntType(kind.bitwidth))
        if argument.type.width < 64:
            # zext, not sext: the other bytes of the word belong to other fields.
            argument = builder.zext(argument, word)
        return argument

    return types.uint64(value), codegen


@intrinsic
def store_unaligned(typingctx, raw, offset, value):
    """Store the integer ``value`` (1, 2, 4 or 8 bytes, its own width) at byte ``offset``
    of the uint8 array ``raw``, with no alignment assumed. No bounds check."""
    if not (isinstance(value, types.Integer) and value.bitwidth in (8, 16, 32, 64)):
        return None
    if not (isinstance(raw, types.Array) and raw.dtype == types.uint8):
        return None

    def codegen(context, builder, sig, args):
        array, index, argument = args
        data = context.make_array(sig.args[0])(context, builder, array).data
        index = context.cast(builder, index, sig.args[1], types.intp)
        address = builder.gep(data, [index], inbounds=True)
        address = builder.bitcast(address, argument.type.as_pointer())
        builder.store(argument, address, align=1)
        return context.get_dummy_value()

    return types.void(raw, offset, value), codegen
