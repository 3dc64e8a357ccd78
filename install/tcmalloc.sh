#!/usr/bin/env bash
# tcmalloc for the daemon (daemon/allocator.py), where apt can install it. Optional: without it
# the daemon runs on the C library's malloc, with more memory and a slower first job.
set -uo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libtcmalloc_minimal\.so'; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    install_tcmalloc() {
        for package in libtcmalloc-minimal4t64 libtcmalloc-minimal4; do  # the name since Debian's 64-bit time
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null 2>&1 && return 0
        done
        return 1
    }
    if install_tcmalloc || { apt-get update -qq >/dev/null 2>&1 && install_tcmalloc; }; then
        echo "tcmalloc installed for the daemon"
        exit 0
    fi
fi
echo "note: $(${VENV:-.venv}/bin/python -c 'from impasto.daemon.allocator import INSTALL_HINT; print(INSTALL_HINT)')" >&2
