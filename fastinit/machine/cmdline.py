"""The kernel command line, parsed once into a frozen `KernelCmdline`.

Every ``name[=value]`` parameter is kept in order (`KernelCmdline.params`, `values()`), so
later users (the HugeTLB pools' ``hugepagesz=``/``hugepages=``) read the same object; the
options the machine model applies are parsed here into typed fields:

- ``mem=``, ``memmap=`` (``nn@ss``, ``nn#ss``, ``nn$ss``, ``nn!ss``, ``nn%ss-from+to``,
  ``exactmap``, plain ``nn``): e820 edits, in command-line order;
- ``kernelcore=`` / ``movablecore=`` (bytes with K/M/G/... or ``N%``), ``kernelcore=mirror``;
- ``numa=off``, ``numa=noacpi``, ``numa=fake=N|SIZE|NU``;
- ``crashkernel=`` (``size[@base]``, ``size,high``, ``size,low``, ``range:size,...``).

As the kernel does, unknown parameters are ignored and a value it cannot use is dropped with
the warning the kernel prints (``Malformed early option 'mem'``), collected in
`KernelCmdline.warnings`. What the model does not do is refused with a ValueError naming the
option (``kernelcore=mirror``: fastinit models no mirrored memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastinit.machine import e820
from fastinit.machine.crashkernel import Crashkernel, parse_crashkernel
from fastinit.machine.numbers import memparse, strtoull

# Longest command line x86 kernels take (COMMAND_LINE_SIZE).
COMMAND_LINE_SIZE = 2048


@dataclass(frozen=True)
class E820Edit:
    """One ``mem=`` or ``memmap=`` option, as it changes the e820 table.

    Attributes
    ----------
    kind : str
        ``"limit"`` (remove RAM at and above ``start``: ``mem=``, plain ``memmap=nn``),
        ``"add"`` (add ``[start, start + size)`` of ``type``), ``"update"`` (``from_type``
        to ``type``), ``"remove"`` (of ``from_type``, or of any type if None) or
        ``"exactmap"`` (forget the firmware's table).
    start, size : int
        Bytes.
    type, from_type : int or None
        e820 type numbers.
    option : str
        The option as written, for messages.
    """

    kind: str
    start: int = 0
    size: int = 0
    type: int | None = None
    from_type: int | None = None
    option: str = ""


@dataclass(frozen=True)
class CoreSize:
    """``kernelcore=`` or ``movablecore=``: pages, or a percent of all memory (0 if absolute)."""

    pages: int = 0
    percent: int = 0

    def pages_of(self, total: int) -> int:
        """The pages it asks for on a machine of ``total`` present pages (a percent in the
        kernel's integer arithmetic, ``total * 100 * percent / 10000``)."""
        return total * 100 * self.percent // 10000 if self.percent else self.pages


@dataclass(frozen=True)
class NumaFake:
    """``numa=fake=``: ``nodes`` fake nodes, nodes of ``size`` bytes, or ``nodes`` per
    physical node (``uniform``, the ``NU`` form)."""

    nodes: int = 0
    size: int = 0
    uniform: bool = False


@dataclass(frozen=True)
class KernelCmdline:
    """A kernel command line, parsed.

    Attributes
    ----------
    text : str
        As given.
    params : tuple of (str, str or None)
        Every parameter before ``--``, in order; None for a parameter without ``=``.
    e820_edits : tuple of E820Edit
    kernelcore, movablecore : CoreSize or None
    numa_off, numa_noacpi : bool
    numa_fake : NumaFake or None
    crashkernel : Crashkernel or None
    warnings : tuple of str
        What the kernel would print about options it dropped.
    """

    text: str = ""
    params: tuple[tuple[str, str | None], ...] = ()
    e820_edits: tuple[E820Edit, ...] = ()
    kernelcore: CoreSize | None = None
    movablecore: CoreSize | None = None
    numa_off: bool = False
    numa_noacpi: bool = False
    numa_fake: NumaFake | None = None
    crashkernel: Crashkernel | None = None
    warnings: tuple[str, ...] = ()

    def values(self, name: str) -> list[str | None]:
        """Every value given to parameter ``name``, in order (``-`` and ``_`` are equal)."""
        key = name.replace("-", "_")
        return [value for param, value in self.params if param.replace("-", "_") == key]


def split_params(text: str) -> list[tuple[str, str | None]]:
    """The parameters of a command line as the kernel's ``next_arg()`` splits them.

    Blanks separate parameters except inside double quotes; quotes around a value (or the
    whole parameter) are dropped; ``--`` ends the kernel's parameters (the rest is init's).
    """
    params, index, length = [], 0, len(text)
    while index < length:
        while index < length and text[index].isspace():
            index += 1
        if index >= length:
            break
        start, quoted = index, False
        while index < length and (quoted or not text[index].isspace()):
            if text[index] == '"':
                quoted = not quoted
            index += 1
        word = text[start:index]
        if word.startswith('"'):
            word = word[1:].removesuffix('"')
        name, equals, value = word.partition("=")
        if not equals:
            if name == "--":
                break
            params.append((name, None))
            continue
        if value.startswith('"'):
            value = value[1:].removesuffix('"')
        params.append((name, value))
    return params


_MEMMAP_TYPES = {"@": e820.E820_RAM, "#": e820.E820_ACPI, "$": e820.E820_RESERVED,
                 "!": e820.E820_PRAM}


def _memmap_one(text: str, option: str) -> E820Edit | None:
    """One comma-separated piece of ``memmap=`` (``parse_memmap_one()``)."""
    if text.startswith("exactmap"):
        return E820Edit("exactmap", option=option)
    size, rest = memparse(text)
    if rest == text:
        return None  # the kernel ignores a piece without a number (and says nothing)
    if not rest or rest[0] not in "@#$!%":
        return E820Edit("limit", start=size, option=option)
    start, tail = memparse(rest[1:])
    if rest[0] != "%":
        return E820Edit("add", start, size, _MEMMAP_TYPES[rest[0]], option=option)
    from_type = to_type = 0
    if tail.startswith("-"):
        from_type, tail = strtoull(tail[1:])
    if tail.startswith("+"):
        to_type, tail = strtoull(tail[1:])
    if tail:
        return None
    if max(from_type, to_type) > e820.MAX_TYPE:
        raise ValueError(f"{option}: e820 type {max(from_type, to_type)} is beyond 32 bits; "
                         f"write a type number such as 1 (RAM) or 2 (reserved)")
    if from_type and to_type:
        return E820Edit("update", start, size, to_type, from_type, option=option)
    if to_type:
        return E820Edit("add", start, size, to_type, option=option)
    return E820Edit("remove", start, size, None, from_type or None, option=option)


def _core(value: str, option: str, warnings: list[str], previous: CoreSize | None) -> CoreSize:
    """``cmdline_parse_core()``: a percent if the number ends in ``%``, else bytes.

    A percent leaves the size an earlier option gave in place (the kernel uses it again if
    the percent is 0); a size clears the percent.
    """
    number, rest = strtoull(value)
    if rest.startswith("%"):
        if number > 100:
            warnings.append(f"{option}: a percent over 100 (the kernel WARNs and "
                            f"creates no movable zone)")
        return CoreSize(pages=previous.pages if previous else 0, percent=number)
    size, _ = memparse(value)
    return CoreSize(pages=size >> 12)


def _numa_fake(value: str) -> NumaFake:
    # The kernel tests for 'U', then for an upper-case 'M' or 'G' anywhere in the text.
    if "U" in value:
        return NumaFake(nodes=strtoull(value, base=0)[0], uniform=True)
    if "M" in value or "G" in value:
        return NumaFake(size=memparse(value)[0])
    return NumaFake(nodes=strtoull(value, base=0)[0])


def parse_cmdline(text: str, system_ram: int | None = None) -> KernelCmdline:
    """Parse a kernel command line.

    Parameters
    ----------
    text : str
        The command line (``Command line:`` of a boot log, or ``--cmdline``).
    system_ram : int or None
        Bytes of RAM, for ``crashkernel=`` range lists (which pick a size by RAM).

    Raises
    ------
    ValueError
        For options the model cannot follow (``kernelcore=mirror``) or a command line longer
        than any kernel takes.
    """
    if not isinstance(text, str):
        raise TypeError(f"a kernel command line is text, got {type(text).__name__}")
    if len(text) > COMMAND_LINE_SIZE * 4:
        raise ValueError(f"kernel command line of {len(text)} characters; x86 kernels take "
                         f"at most {COMMAND_LINE_SIZE}")
    params = split_params(text)
    fields: dict = {"e820_edits": [], "warnings": []}
    warnings = fields["warnings"]
    for name, value in params:
        key = name.replace("-", "_")
        if key not in _HANDLERS:
            continue
        if value is None:  # the handler gets NULL and returns -EINVAL
            warnings.append(f"Malformed early option '{name}'")
            continue
        _HANDLERS[key](name, value, fields, system_ram)
    crash = fields.pop("crash", {})
    main = crash.get("plain") or crash.get("high")
    if main is not None and main.high and crash.get("low") is not None:
        main = Crashkernel(main.size, main.base, True, crash["low"].size)
    fields["crashkernel"] = main
    fields["e820_edits"] = tuple(fields["e820_edits"])
    fields["warnings"] = tuple(warnings)
    return KernelCmdline(text=text, params=tuple(params), **fields)


def _on_mem(name, value, fields, _ram):
    if value == "nopentium":
        fields["warnings"].append("mem=nopentium ignored! (only supported on x86_32)")
        return
    size, _ = memparse(value)
    if size == 0:  # the kernel refuses to remove all memory
        fields["warnings"].append(f"Malformed early option '{name}'")
        return
    fields["e820_edits"].append(E820Edit("limit", start=size, option=f"{name}={value}"))


def _on_memmap(name, value, fields, _ram):
    for piece in value.split(","):
        edit = _memmap_one(piece, f"{name}={piece}")
        if edit is not None:
            fields["e820_edits"].append(edit)


def _on_kernelcore(name, value, fields, _ram):
    if value == "mirror":
        raise ValueError("kernelcore=mirror: the movable zone would be made of memory that "
                         "is not mirrored (EFI memory attributes), which fastinit does not "
                         "model; remove the option or use kernelcore=SIZE or N%")
    fields["kernelcore"] = _core(value, f"{name}={value}", fields["warnings"],
                                 fields.get("kernelcore"))


def _on_movablecore(name, value, fields, _ram):
    fields["movablecore"] = _core(value, f"{name}={value}", fields["warnings"],
                                  fields.get("movablecore"))


def _on_numa(name, value, fields, _ram):
    if value.startswith("off"):
        fields["numa_off"] = True
    elif value.startswith("fake="):
        fields["numa_fake"] = _numa_fake(value[5:])
    elif value.startswith("noacpi"):
        fields["numa_noacpi"] = True


def _on_crashkernel(name, value, fields, ram):
    # The last of each form counts; a plain one wins over ",high" (reserve_crashkernel()).
    form, crash = parse_crashkernel(value, ram)
    fields.setdefault("crash", {})[form] = crash


_HANDLERS = {"mem": _on_mem, "memmap": _on_memmap, "kernelcore": _on_kernelcore,
             "movablecore": _on_movablecore, "numa": _on_numa, "crashkernel": _on_crashkernel}
