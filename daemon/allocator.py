"""The C allocator under the daemon's tensors: tcmalloc where installed, else the C library's.

glibc's malloc carves small blocks out of the large holes VGG19's freed activations leave, so
the next pass's large blocks no longer fit in them: a 4 MP scale's heap grew far beyond what it
used at once, and every new page of it was faulted in, most of a fresh daemon's first job's
extra time (bench/memory_per_pixel.py, bench/network_cost.py). tcmalloc (gperftools) keeps small
blocks apart from large ones, so holes are reused. The daemon restarts itself under it on Linux
when the library is installed (`libtcmalloc-minimal4`), before torch is imported;
`IMPASTO_ALLOCATOR=system` keeps the C library's. Torch-free: the launcher imports it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

CHOICE = "IMPASTO_ALLOCATOR"  # "system": stay on the C library's malloc; set to "tcmalloc" once restarted
TCMALLOC_NAMES = ("tcmalloc_minimal", "tcmalloc")
INSTALL_HINT = ("tcmalloc is not installed: the daemon needs much less memory with it (Debian, Ubuntu: apt install "
                "libtcmalloc-minimal4; Fedora: gperftools-libs; Arch: gperftools)")
# Freed pages stay until the daemon gives them back (memory.HeldMemory), not a few at a time as
# tcmalloc otherwise does; and blocks over 1 GB, routine at 24 MP, are not reported on stderr.
TCMALLOC_SETTINGS = {"TCMALLOC_RELEASE_RATE": "0", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**62)}


def find_tcmalloc() -> str | None:
    """The installed tcmalloc's library name, for the dynamic linker, or None."""
    if not sys.platform.startswith("linux"):
        return None
    for name in TCMALLOC_NAMES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


PROCESS = ctypes.CDLL(None)  # every library loaded into this process, a preloaded one first
TCMALLOC = hasattr(PROCESS, "MallocExtension_ReleaseFreeMemory")
GLIBC = _glibc()
if GLIBC is not None and hasattr(GLIBC, "mallinfo2"):
    GLIBC.mallinfo2.restype = _MallInfo2
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # mallopt's parameters (malloc.h)


def name() -> str:
    """The allocator in use, for the log: tcmalloc, glibc or system (another C library's)."""
    return "tcmalloc" if TCMALLOC else "glibc" if GLIBC is not None else "system"


def hold_freed(hold: bool) -> None:
    """Keep freed memory for later allocations (memory.hold_freed_memory); tcmalloc does
    already, by TCMALLOC_SETTINGS.

    glibc gives each block over 32 MB a mapping of its own and unmaps it when freed; from the
    heap, untrimmed, blocks are reused. Every thread shares that one heap, since a thread's own
    arena maps a large block whatever it is told. Trimming is off altogether (mallopt(3): a
    threshold of -1): the largest threshold mallopt takes, 2 GiB, was passed by a 4 MP scale's
    freed top, which went back to the system every pass (tests/test_memory.py).
    """
    if GLIBC is not None and not TCMALLOC:
        GLIBC.mallopt(M_MMAP_MAX, 0 if hold else 65536)
        GLIBC.mallopt(M_TRIM_THRESHOLD, -1 if hold else 128 * 1024)
        GLIBC.mallopt(M_ARENA_MAX, 1 if hold else 0)


def give_back() -> None:
    """Return the freed memory held now to the system."""
    if TCMALLOC:
        PROCESS.MallocExtension_ReleaseFreeMemory()
    elif GLIBC is not None:
        GLIBC.malloc_trim(0)


def freed_bytes() -> int:
    """Freed memory this process holds, untrimmed: tcmalloc's free pages, or glibc's free heap."""
    if TCMALLOC:
        value = ctypes.c_size_t()
        found = PROCESS.MallocExtension_GetNumericProperty(b"tcmalloc.pageheap_free_bytes", ctypes.byref(value))
        return value.value if found else 0
    if GLIBC is None or not hasattr(GLIBC, "mallinfo2"):  # glibc before 2.33
        return 0
    return int(GLIBC.mallinfo2().fordblks)


def tcmalloc_environment(environment: dict[str, str]) -> dict[str, str] | None:
    """`environment` with tcmalloc preloaded and set as the daemon wants it; None where it is
    not installed."""
    library = find_tcmalloc()
    if library is None:
        return None
    preload = " ".join(part for part in (library, environment.get("LD_PRELOAD")) if part)
    return {**environment, **TCMALLOC_SETTINGS, CHOICE: "tcmalloc", "LD_PRELOAD": preload}


def restart_under_tcmalloc() -> None:
    """Run this process's command again under tcmalloc, where that is wanted and can be.

    The process is replaced (same PID, same open descriptors), so whoever started it, a service
    manager included, sees no difference. Call it before anything else is imported or started.
    """
    if os.environ.get(CHOICE) in ("system", "tcmalloc") or TCMALLOC:
        return
    environment = tcmalloc_environment(dict(os.environ))
    if environment is not None:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
