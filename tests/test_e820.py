"""e820 table: the kernel's sanitizer, range updates and removals, page trimming."""

import pytest

from fastinit.machine import e820
from fastinit.machine.e820 import E820_ACPI, E820_RAM, E820_RESERVED, E820_RESERVED_KERN


def test_sanitize_overlap_higher_type_wins():
    table = [(0, 100, E820_RAM), (50, 150, E820_RESERVED)]
    assert e820.sanitize(table) == [(0, 50, E820_RAM), (50, 150, E820_RESERVED)]


def test_sanitize_sorts_and_merges_touching_same_type():
    table = [(200, 300, E820_RAM), (0, 100, E820_RAM), (100, 200, E820_RAM)]
    assert e820.sanitize(table) == [(0, 300, E820_RAM)]


def test_sanitize_entry_inside_another():
    table = [(0, 1000, E820_RAM), (100, 200, E820_ACPI)]
    assert e820.sanitize(table) == [(0, 100, E820_RAM), (100, 200, E820_ACPI),
                                    (200, 1000, E820_RAM)]


def test_sanitize_drops_empty_and_keeps_gaps():
    assert e820.sanitize([(5, 5, E820_RAM), (10, 20, E820_RAM), (30, 40, E820_RAM)]) == \
        [(10, 20, E820_RAM), (30, 40, E820_RAM)]


def test_update_splits_entry_of_old_type_only():
    table = [(0, 100, E820_RAM), (100, 200, E820_ACPI)]
    assert e820.update(table, 50, 150, E820_RAM, E820_RESERVED) == \
        [(0, 50, E820_RAM), (50, 100, E820_RESERVED), (100, 200, E820_ACPI)]


def test_remove_with_type_leaves_other_types():
    table = [(0, 100, E820_RAM), (100, 200, E820_RESERVED)]
    assert e820.remove(table, 50, 150, E820_RAM) == [(0, 50, E820_RAM),
                                                    (100, 200, E820_RESERVED)]


def test_remove_without_type_cuts_everything():
    table = [(0, 100, E820_RAM), (100, 200, E820_RESERVED)]
    assert e820.remove(table, 50, 150, None) == [(0, 50, E820_RAM), (150, 200, E820_RESERVED)]


def test_memory_trimmed_to_whole_pages_start_up_end_down():
    table = [(0x1000, 0x9FC00, E820_RAM), (0x100000, 0x100800, E820_RAM)]
    assert e820.memory_pfn_ranges(table) == [(1, 0x9F)]


def test_reserved_kern_counts_as_memory_and_merges():
    table = [(0, 0x5000, E820_RAM), (0x5000, 0x6000, E820_RESERVED_KERN),
             (0x6000, 0x8000, E820_RAM)]
    assert e820.memory_pfn_ranges(table) == [(0, 8)]


@pytest.mark.parametrize("text, kind", [
    ("usable", 1), ("reserved", 2), ("ACPI data", 3), ("ACPI NVS", 4), ("unusable", 5),
    ("persistent (type 12)", 12), ("persistent (type 7)", 7), ("type 9", 9), ("type 20", 20),
    ("soft reserved", e820.E820_SOFT_RESERVED), ("(usable)", 1), ("(ACPI data)", 3),
    ("(type 12)", 12), ("  Usable  ", 1),
    # Linux 7.x's names.
    ("System RAM", 1), ("device reserved", 2), ("persistent RAM (type 7)", 7),
    ("persistent RAM (type 12)", 12),
])
def test_parse_type_names_every_kernel_prints(text, kind):
    assert e820.parse_type(text) == kind


@pytest.mark.parametrize("text", ["reserved usable", "usable   x", "persistent", "ram",
                                  "type", "ACPI", "System", "device", "RAM",
                                  "System RAM reserved", "persistent RAM"])
def test_parse_type_matches_whole_names_only(text):
    with pytest.raises(ValueError, match="unknown e820 type"):
        e820.parse_type(text)


def test_parse_type_unknown_raises():
    with pytest.raises(ValueError, match="unknown e820 type 'bogus'"):
        e820.parse_type("bogus")
