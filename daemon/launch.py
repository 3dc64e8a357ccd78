"""`impasto-daemon`'s entry point: under tcmalloc where it is installed, then the daemon itself.

Kept apart from main.py so that the restart (allocator.restart_under_tcmalloc) comes before
torch is imported, which takes seconds.
"""

from __future__ import annotations

from .allocator import restart_under_tcmalloc


def main() -> int:
    restart_under_tcmalloc()
    from .main import main as serve  # only now: torch and the rest

    return serve()


if __name__ == "__main__":
    raise SystemExit(main())
