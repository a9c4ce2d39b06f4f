"""The drgn oracle of page-classes.drgn.e2e.test.ts: one class per guest frame, from a core file of guest memory.

Independent of xme's classifier where it matters: struct layouts come from the kernel's DWARF (the -dbg vmlinux;
xme reads BTF), the PG_* bit numbers from the DWARF enum pageflags (xme: series rules), virtual addresses are
translated by drgn's own page-table walk (xme: arch/page-walk.ts), and file pages are resolved to inodes through
drgn objects. Only the page_type encoding is written here (macros, in no debug info: include/linux/page-flags.h
of 6.1). Usage: python3 drgn-page-classes.py CORE VMLINUX FRAMES; prints JSON {"kinds": "...", "files": {...}}:
one letter per frame (f free buddy, c page cache, s shmem, a anon, l slab, t page table, r reserved, o other) and
for page-cache and shmem frames [inode number, page index].
"""
import json
import struct
import sys

import drgn
from drgn import Object

core, vmlinux, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
prog = drgn.Program()
prog.set_core_dump(core)
prog.load_debug_info([vmlinux])

page = prog.type("struct page")
size = page.size
off = {name: drgn.offsetof(page, name) for name in ("flags", "compound_head", "mapping", "index", "private", "page_type")}
bit = {name: 1 << prog[name].value_() for name in ("PG_slab", "PG_reserved", "PG_swapbacked")}
# page_type (6.1): a type is set when its bit is clear under PAGE_TYPE_BASE.
TYPE_BASE, PG_BUDDY, PG_OFFLINE, PG_TABLE = 0xF0000000, 0x80, 0x100, 0x200


def typed(value, flag):
    return value & (TYPE_BASE | flag) == TYPE_BASE


memmap = prog.read(prog["vmemmap_base"].value_(), frames * size)
vmemmap = prog["vmemmap_base"].value_()


def field(pfn, name, fmt="<Q"):
    return struct.unpack_from(fmt, memmap, pfn * size + off[name])[0]


kinds = ["o"] * frames
files = {}
hosts = {}
pfn = 0
while pfn < frames:
    page_type = field(pfn, "page_type", "<I")
    if typed(page_type, PG_BUDDY):
        order = field(pfn, "private")
        for inside in range(pfn, min(frames, pfn + (1 << order))):
            kinds[inside] = "f"
        pfn += 1 << order
        continue
    head = pfn
    compound = field(pfn, "compound_head")
    if compound & 1:
        head = (compound - 1 - vmemmap) // size
    flags = field(head, "flags")
    mapping = field(head, "mapping")
    if typed(field(head, "page_type", "<I"), PG_TABLE):
        kinds[pfn] = "t"
    elif typed(field(head, "page_type", "<I"), PG_OFFLINE):
        kinds[pfn] = "r"
    elif flags & bit["PG_slab"]:
        kinds[pfn] = "l"
    elif flags & bit["PG_reserved"]:
        kinds[pfn] = "r"
    elif mapping & 3 in (1, 3):
        kinds[pfn] = "a"
    elif mapping and mapping & 3 == 0:
        if mapping not in hosts:
            host = Object(prog, "struct address_space *", value=mapping).host
            hosts[mapping] = host.i_ino.value_() if host.value_() else None
        if hosts[mapping] is not None:
            kinds[pfn] = "s" if flags & bit["PG_swapbacked"] else "c"
            files[pfn] = [hosts[mapping], field(head, "index") + (pfn - head)]
    pfn += 1

print(json.dumps({"kinds": "".join(kinds), "files": files}))
