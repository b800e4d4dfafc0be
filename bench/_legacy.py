"""Import helper: the retired plain (non-zero-knowledge) protocol lives in tests/zk/legacy and
is measured beside the zero-knowledge one in the same process."""

import os
import sys

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "zk")
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
