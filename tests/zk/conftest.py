"""Makes the retired plain protocol (tests/zk/legacy) importable as ``legacy``."""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
