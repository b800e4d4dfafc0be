"""tlookup: prove and verify time and proof size for committed lookups.

Run: python bench/tlookup.py [--sizes 16 20 22] [--tables 8 16]
Rows: 2^n looked-up entries (uniform in the table) into a range table of 2^t entries, with the
multiplicities committed and opened (Hyrax). Not counted: the commitment to the looked-up
vector itself, which belongs to the tensor being checked.
Targets (issue 4): 2^20 lookups into a 2^16 table proven in at most 3 s on this 2-core
machine, verified in under 100 ms, proof under 20 KB.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zk import tlookup as tl
from zk.encoding import Writer
from zk.lookup import LookupTable
from zk.transcript import Transcript


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 20, 22], help="log2 lookups")
    ap.add_argument("--tables", type=int, nargs="+", default=[8, 16], help="log2 table size")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    warm = LookupTable.range(0, 256)
    tl.verify(Transcript(b"w"), warm, tl.shapes(0, [4096]),
              tl.prove(Transcript(b"w"), warm, [tl.column(0, rng.integers(0, 256, 4096))])[0])
    print(f"{'lookups':>8} {'table':>6} {'prove (s)':>10} {'verify (ms)':>12} {'proof (KB)':>11}")
    for t_bits in args.tables:
        table = LookupTable.range(0, 1 << t_bits)
        for n_bits in args.sizes:
            x = rng.integers(0, 1 << t_bits, size=1 << n_bits)
            col = tl.column(0, x)
            t0 = time.perf_counter()
            proof, _ = tl.prove(Transcript(b"bench"), table, [col])
            t1 = time.perf_counter()
            tl.verify(Transcript(b"bench"), table, tl.shapes(0, [x.size]), proof)
            t2 = time.perf_counter()
            w = Writer()
            proof.write(w)
            print(f"{'2^%d' % n_bits:>8} {'2^%d' % t_bits:>6} {t1 - t0:>10.3f} "
                  f"{(t2 - t1) * 1e3:>12.1f} {len(w.getvalue()) / 1024:>11.1f}")


if __name__ == "__main__":
    main()
