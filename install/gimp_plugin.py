#!/usr/bin/env python3
"""Install (or remove) Impasto's GIMP 3 plug-in from a clone: `python3 install/gimp_plugin.py --help`.

The same as `impasto install-gimp` from an installed package; the work is in install/gimp.py.
Standard library only, so any python3 can run it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the clone's root holds the `impasto` package

from impasto.install.gimp import main

if __name__ == "__main__":
    sys.exit(main())
