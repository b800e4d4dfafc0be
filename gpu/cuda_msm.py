"""Bucketed Pippenger MSM on a CUDA device: numba.cuda kernels on CuPy arrays.

Computes what :mod:`gpu.msm` computes on the CPU: for each of m rows, ``sum_i k[row, i] * P_i``
over one shared base of n affine points (``(n, 8)`` rows, see :mod:`gpu.curve`), returned as
Jacobian ``(m, 12)`` rows. All m rows go through one launch sequence (Hyrax commits one MSM
per matrix row), and the base points stay on the device between calls (:func:`device_points`).

Algorithm (c-bit signed windows, nb = 2^(c-1) buckets per window, W windows per row)
-----------------------------------------------------------------------------------
1. **Digits** (one thread per scalar): s > (r-1)/2 becomes r - s with the point negated; the
   signed digits are those of :mod:`gpu.msm` (s + K with K = sum_w 2^(c-1) 2^(cw), digit w =
   ((s + K) >> cw) mod 2^c - 2^(c-1)). Each nonzero digit d becomes one 64-bit entry:
   the bucket key ``(row * W + w) * nb + |d| - 1`` in the high 32 bits, the point index and the
   sign in the low 32; zero digits become a sentinel that sorts last. Writes are coalesced
   (entry ``(row * W + w) * n + i`` for thread (row, i)).
2. **Grouping**: CuPy sorts the entries (radix sort), so every bucket is one contiguous run.
3. **Bucket sums**, load-balanced whatever the digit distribution: thread t adds the T sorted
   entries [tT, tT + T) into a Jacobian accumulator with mixed (Jacobian + affine) additions,
   emitting one partial sum each time the key changes and at the end; the partials' slots come
   from a CuPy prefix sum. Buckets split over several chunks are then summed by a few rounds
   in which each thread adds up to T2 consecutive partials of one bucket, until every bucket
   has one sum. Repeated points, P + (-P) and the identity are handled by the addition laws.
4. **Bucket reduction** of each window, sum_b (b+1) B_b, in parallel: level by level, a
   thread reduces L consecutive buckets by a running sum. With V = sum_j A_j + 2^k sum_j j B_j
   (initially A = B and k = 0), segment s of L entries gives A'_s = sum_t A_{sL+t} +
   2^k sum_t t B_{sL+t}, B'_s = sum_t B_{sL+t}, k' = k + log2 L; one entry left is the window
   sum. About 2.5 additions per bucket and log_L(nb) launches, no serial pass over buckets.
5. **Window combination** by Horner's rule (c doublings per window), one thread per row.

Arrays are CuPy arrays on a real device. Under numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) the same code runs with numpy arrays (the kernels then execute on
the CPU): that is how the tests check every step without a GPU, at small sizes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np
from numba import cuda

from gpu import curve as C
from gpu import field as F
from gpu import msm as M
from gpu.cuda_kernels import (  # noqa: F401 (device functions used inside the kernels)
    DQ,
    DR,
    ONE,
    SIMULATOR,
    U64,
    ZERO,
    _gt,
    _sub_limbs,
    adc,
    aff_load,
    from_mont,
    jac_add,
    jac_add_affine,
    jac_double,
    jac_identity,
    jac_load,
    jac_store,
    load,
    neg,
)

__all__ = ["DevicePoints", "device_points", "window_bits", "msm_mont", "msm_canonical",
           "msm_signed", "msm_signed_blinded", "msm_mont_blinded", "clear_cache"]

_S32 = U64(32)
_S31 = U64(31)
_IDX = U64(0x7FFFFFFF)
SENTINEL = U64(0xFFFFFFFFFFFFFFFF)
_HALF_R = M._HALF_R_LIMBS
_R = M._R_LIMBS
_TPB = 8 if SIMULATOR else 128  # threads per block (the simulator runs every thread in Python)
_CACHE = not SIMULATOR
# the hot kernel takes 146 registers unbounded: 128 lets 4 blocks of 128 threads share an SM
# (sm_90, ptxas: 28 bytes of spills); the simulator knows no register limits
_HOT = {} if SIMULATOR else {"max_registers": 128}
_ENTRY_BUDGET = 1 << 26  # sorted entries per batch of rows (8 bytes each, plus the sort's copy)
_MAX_KEYS = (1 << 32) - 2  # bucket keys live in 32 bits; the sentinel's high word is 2^32 - 1
_SEG = 8  # buckets per thread and level of the bucket reduction
_T2 = 16  # partial sums per thread in the second and later rounds of bucket sums


# ---------------------------------------------------------------- kernels


@cuda.jit(device=True)
def _limb5(v0, v1, v2, v3, v4, k):
    if k == 0:
        return v0
    if k == 1:
        return v1
    if k == 2:
        return v2
    if k == 3:
        return v3
    return v4


@cuda.jit(device=True)
def _emit(s, sign, t, c, windows, nb, n, koff, out):
    """Write the W digit entries of scalar t (= row * n + i), s = |scalar| <= (r-1)/2."""
    v0, cy = adc(s[0], koff[0], ZERO)
    v1, cy = adc(s[1], koff[1], cy)
    v2, cy = adc(s[2], koff[2], cy)
    v3, cy = adc(s[3], koff[3], cy)
    v4, cy = adc(ZERO, koff[4], cy)
    row = t // n
    i = t - row * n
    mask = (ONE << U64(c)) - ONE
    half = np.int64(1) << (c - 1)
    low = U64(i) | (sign << _S31)
    for w in range(windows):
        bit = w * c
        limb = bit >> 6
        off = bit & 63
        d = _limb5(v0, v1, v2, v3, v4, limb) >> U64(off)
        if off + c > 64:
            d |= _limb5(v0, v1, v2, v3, v4, limb + 1) << U64(64 - off)
        dg = np.int64(d & mask) - half
        g = row * windows + w
        e = g * n + i
        if dg == 0:
            out[e] = SENTINEL
        elif dg > 0:
            out[e] = (U64(g * nb + dg - 1) << _S32) | low
        else:
            out[e] = (U64(g * nb - dg - 1) << _S32) | (low ^ (ONE << _S31))


@cuda.jit(cache=_CACHE)
def k_digits_field(scal, mont, c, windows, nb, n, koff, out):
    """Digit entries of (m * n, 4) Fr scalars (Montgomery form if ``mont``, else canonical)."""
    t = cuda.grid(1)
    if t < scal.shape[0]:
        s = load(scal, t)
        if mont:
            s = from_mont(s, DR)
        sign = ZERO
        if _gt(s, _HALF_R):
            s = _sub_limbs(_R, s)
            sign = ONE
        _emit(s, sign, t, c, windows, nb, n, koff, out)


@cuda.jit(cache=_CACHE)
def k_digits_signed(scal, c, windows, nb, n, koff, out):
    """Digit entries of (m * n,) signed integer scalars (any integer dtype)."""
    t = cuda.grid(1)
    if t < scal.shape[0]:
        v = np.int64(scal[t])
        if v < 0:
            mag = U64(-(v + 1)) + ONE
            sign = ONE
        else:
            mag = U64(v)
            sign = ZERO
        _emit((mag, ZERO, ZERO, ZERO), sign, t, c, windows, nb, n, koff, out)


@cuda.jit(cache=_CACHE, **_HOT)
def k_bucket_chunks(points, entries, n_nz, chunk, slot, out, out_keys):
    """Thread t adds sorted entries [t*chunk, t*chunk + chunk); a partial sum per key run.

    ``slot[j]`` is the output row of the run that entry j ends (a prefix sum of run starts).
    """
    t = cuda.grid(1)
    lo = t * chunk
    if lo < n_nz:
        hi = min(lo + chunk, n_nz)
        key = entries[lo] >> _S32
        acc = jac_identity()
        for j in range(lo, hi):
            e = entries[j]
            k = e >> _S32
            if k != key:
                p = slot[j - 1]
                jac_store(out, p, acc)
                out_keys[p] = key
                acc = jac_identity()
                key = k
            x, y = aff_load(points, e & _IDX)
            if (e >> _S31) & ONE:
                y = neg(y, DQ)
            acc = jac_add_affine(acc, x, y, DQ)
        p = slot[hi - 1]
        jac_store(out, p, acc)
        out_keys[p] = key


@cuda.jit(cache=_CACHE)
def k_sum_runs(parts, keys, starts, count, out, out_keys):
    """out[q] = sum of parts[starts[q] : starts[q + 1]] (one key per range)."""
    q = cuda.grid(1)
    if q < count:
        a = starts[q]
        b = starts[q + 1]
        acc = jac_load(parts, a)
        for j in range(a + 1, b):
            acc = jac_add(acc, jac_load(parts, j), DQ)
        jac_store(out, q, acc)
        out_keys[q] = keys[a]


@cuda.jit(cache=_CACHE)
def k_reduce_level(A, B, first, seg, kdbl, width, count, outA, outB):
    """One level of the bucket reduction (module docstring, step 4) for ``count`` segments."""
    t = cuda.grid(1)
    if t < count:
        base = t * seg
        running = jac_identity()
        tot = jac_identity()
        for u in range(seg - 1, 0, -1):
            running = jac_add(running, jac_load(B, base + u), DQ)
            tot = jac_add(tot, running, DQ)
        running = jac_add(running, jac_load(B, base), DQ)
        if first:
            a = jac_add(tot, running, DQ)
        else:
            for _ in range(kdbl):
                tot = jac_double(tot, DQ)
            a = tot
            for u in range(seg):
                a = jac_add(a, jac_load(A, base + u), DQ)
        jac_store(outA, t, a)
        jac_store(outB, t, running)


@cuda.jit(cache=_CACHE)
def k_combine(parts, windows, c, m, out):
    """out[row] = sum_w 2^(cw) parts[row * W + w] (Horner)."""
    row = cuda.grid(1)
    if row < m:
        acc = jac_load(parts, row * windows + windows - 1)
        for w in range(windows - 2, -1, -1):
            for _ in range(c):
                acc = jac_double(acc, DQ)
            acc = jac_add(acc, jac_load(parts, row * windows + w), DQ)
        jac_store(out, row, acc)


# ---------------------------------------------------------------- arrays and launches


def _xp():
    """The array module: CuPy on a device, numpy under the simulator."""
    if SIMULATOR:
        return np
    import cupy  # noqa: PLC0415

    return cupy


def _dev(a, dtype=None):
    """A host array on the device (CuPy), or a private copy under the simulator (which writes
    every array argument back after a kernel, and so cannot take read-only views)."""
    if SIMULATOR:
        return np.array(a, dtype=dtype)
    import cupy  # noqa: PLC0415

    return cupy.asarray(a, dtype=dtype)


def _arg(a):
    """numba's view of a CuPy array: no copy, and no stream synchronisation (numba and CuPy
    both launch on the legacy default stream, so the order of launches is the order of work)."""
    return cuda.as_cuda_array(a, sync=False)


def _launch(kernel, threads: int, *args) -> None:
    if threads > 0:
        blocks = (threads + _TPB - 1) // _TPB
        kernel[blocks, _TPB](*[_arg(a) if hasattr(a, "__cuda_array_interface__") else a
                               for a in args])


def _host(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.get()


class DevicePoints:
    """Affine points (n, 8) resident on the device (a CuPy array; numpy under the simulator)."""

    def __init__(self, points: np.ndarray):
        points = M._check_points(points)
        self.n = points.shape[0]
        self.array = _dev(points)

    @property
    def nbytes(self) -> int:
        return self.n * 64


_cache: OrderedDict[Hashable, tuple[bytes, DevicePoints]] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_ENTRIES = 8


def _fingerprint(*arrays: np.ndarray) -> bytes:
    """First and last rows of each array: a cheap guard against a key reused for other points."""
    return b"".join(a[:1].tobytes() + a[-1:].tobytes() + str(a.shape).encode() for a in arrays)


def _cached(cache_key: Hashable, fp: bytes, build) -> DevicePoints:
    with _cache_lock:
        hit = _cache.get(cache_key)
        if hit is not None and hit[0] == fp:
            _cache.move_to_end(cache_key)
            return hit[1]
    dp = DevicePoints(build())
    with _cache_lock:
        _cache[cache_key] = (fp, dp)
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return dp


def device_points(points: np.ndarray | DevicePoints, cache_key: Hashable | None = None
                  ) -> DevicePoints:
    """The device copy of ``points``: uploaded once per ``cache_key`` (a key must always name
    the same points, e.g. a generator label and count; a changed first or last row or shape
    replaces the entry), else on every call. At most :data:`CACHE_ENTRIES` bases are kept."""
    if isinstance(points, DevicePoints):
        return points
    if cache_key is None:
        return DevicePoints(points)
    points = np.asarray(points)
    return _cached(cache_key, _fingerprint(points), lambda: points)


def clear_cache() -> None:
    """Drop every cached device base (frees their device memory once unreferenced)."""
    with _cache_lock:
        _cache.clear()


# ---------------------------------------------------------------- the pipeline


def window_bits(n: int, bits: int) -> int:
    """Window size c minimising a cost model of the device pipeline for n points per row.

    Per window: ~13 multiplication-equivalents per point (a mixed addition and its share of
    the sort) and ~40 per bucket (2.5 Jacobian additions in the reduction).
    """
    best, best_cost = 2, math.inf
    for c in range(2, 21):
        windows = max(1, -(-(bits + 2) // c))
        cost = windows * (13.0 * n + 40.0 * (1 << (c - 1)))
        if cost < best_cost:
            best, best_cost = c, cost
    return best


def _bucket_sums(xp, pts, entries, n_nz: int):
    """(sums (D, 12), keys (D,)) with one Jacobian sum per nonempty bucket key."""
    chunk = 4
    while chunk < 64 and n_nz // (2 * chunk) >= 1 << 17:
        chunk *= 2
    keys = entries[:n_nz] >> np.uint64(32)
    starts = xp.empty(n_nz, dtype=bool)
    starts[0] = True
    starts[1:] = keys[1:] != keys[:-1]
    starts[::chunk] = True
    slot = xp.cumsum(starts, dtype=np.int64) - 1
    P = int(slot[-1]) + 1
    parts = xp.empty((P, 12), dtype=np.uint64)
    pkeys = xp.empty(P, dtype=np.uint64)
    _launch(k_bucket_chunks, -(-n_nz // chunk), pts, entries, n_nz, chunk, slot, parts, pkeys)
    while P > 1:
        first = xp.empty(P, dtype=bool)
        first[0] = True
        first[1:] = pkeys[1:] != pkeys[:-1]
        runs = xp.nonzero(first)[0]
        if runs.size == P:
            break
        run_id = xp.cumsum(first, dtype=np.int64) - 1
        rel = xp.arange(P, dtype=np.int64) - runs[run_id]
        lo = xp.nonzero(rel % _T2 == 0)[0]
        Q = int(lo.size)
        bounds = xp.empty(Q + 1, dtype=np.int64)
        bounds[:Q] = lo
        bounds[Q] = P
        nparts = xp.empty((Q, 12), dtype=np.uint64)
        nkeys = xp.empty(Q, dtype=np.uint64)
        _launch(k_sum_runs, Q, parts, pkeys, bounds, Q, nparts, nkeys)
        parts, pkeys, P = nparts, nkeys, Q
    return parts, pkeys


def _window_sums(xp, parts, pkeys, groups: int, nb: int):
    """(groups, 12) window sums sum_b (b+1) B_b from the nonempty buckets' sums."""
    B = xp.zeros((groups * nb, 12), dtype=np.uint64)  # Z = 0: the identity
    B[pkeys.astype(np.int64)] = parts
    A, width, kdbl, first = B, nb, 0, True
    while width > 1:
        seg = min(_SEG, width)
        count = groups * width // seg
        nA = xp.empty((count, 12), dtype=np.uint64)
        nB = xp.empty((count, 12), dtype=np.uint64)
        _launch(k_reduce_level, count, A, B, first, seg, kdbl, width, count, nA, nB)
        A, B, width = nA, nB, width // seg
        kdbl += seg.bit_length() - 1
        first = False
    return A


def _run_rows(pts: DevicePoints, digits, rows: int, c: int, windows: int) -> np.ndarray:
    """Jacobian (rows, 12) results; ``digits(out, koff)`` writes the rows' digit entries."""
    xp = _xp()
    n = pts.n
    nb = 1 << (c - 1)
    groups = rows * windows
    entries = xp.empty(groups * n, dtype=np.uint64)
    koff = _dev(M._offset_limbs(c, windows))
    digits(entries, koff)
    entries.sort()
    n_nz = int(xp.searchsorted(entries, xp.asarray([SENTINEL], dtype=np.uint64))[0])
    if n_nz == 0:
        return M._identities(rows)
    parts, pkeys = _bucket_sums(xp, pts.array, entries, n_nz)
    del entries
    sums = _window_sums(xp, parts, pkeys, groups, nb)
    out = xp.empty((rows, 12), dtype=np.uint64)
    _launch(k_combine, rows, sums, windows, c, rows, out)
    return _host(out)


def _batches(m: int, n: int, c: int, windows: int) -> list[tuple[int, int]]:
    nb = 1 << (c - 1)
    if windows * nb > _MAX_KEYS:
        raise ValueError(f"window size {c} is too large for the device MSM")
    per = max(1, min(m, _ENTRY_BUDGET // max(1, windows * n), _MAX_KEYS // (windows * nb)))
    return [(r, min(m, r + per)) for r in range(0, m, per)]


def _field_rows(pts: DevicePoints, s, c: int | None, mont: bool) -> np.ndarray:
    """m MSMs of a device array s (m, n, 4) of Fr scalars."""
    n, m = pts.n, s.shape[0]
    c = c or window_bits(n, 253)
    windows = -(-255 // c)
    nb = 1 << (c - 1)
    out = []
    for r0, r1 in _batches(m, n, c, windows):
        flat = s[r0:r1].reshape(-1, 4)

        def digits(entries, koff, flat=flat):
            _launch(k_digits_field, flat.shape[0], flat, mont, c, windows, nb, n, koff, entries)

        out.append(_run_rows(pts, digits, r1 - r0, c, windows))
    return np.concatenate(out)


def _field(points, scalars, c: int | None, mont: bool, cache_key) -> np.ndarray:
    pts = device_points(points, cache_key)
    if pts.n == 0:
        return M._identities(1)
    s = _dev(scalars, np.uint64).reshape(-1, pts.n, 4)
    if s.shape[0] == 0:
        return M._identities(0)
    return _field_rows(pts, _xp().ascontiguousarray(s), c, mont)


def msm_mont(points: np.ndarray | DevicePoints, scalars, c: int | None = None,
             cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) results of m MSMs with Fr scalars in Montgomery form, on the device.

    ``scalars`` is (n, 4) or (m, n, 4), a numpy array or already a device array.
    """
    return _field(points, scalars, c, True, cache_key)


def msm_canonical(points: np.ndarray | DevicePoints, scalars, c: int | None = None,
                  cache_key: Hashable | None = None) -> np.ndarray:
    """Like :func:`msm_mont` for canonical little-endian limbs (each < r)."""
    return _field(points, scalars, c, False, cache_key)


def _signed_rows(pts: DevicePoints, s, c: int | None, lo: int, hi: int) -> np.ndarray:
    """m MSMs of a device array s (m, n) of integers in [lo, hi]."""
    n, m = pts.n, s.shape[0]
    bits = max(1, (max(-lo, hi) + 1).bit_length())  # as gpu.msm.msm_signed measures it
    c = c or window_bits(n, bits)
    windows = max(1, -(-(bits + 2) // c))
    nb = 1 << (c - 1)
    out = []
    for r0, r1 in _batches(m, n, c, windows):
        flat = s[r0:r1].reshape(-1)

        def digits(entries, koff, flat=flat):
            _launch(k_digits_signed, flat.shape[0], flat, c, windows, nb, n, koff, entries)

        out.append(_run_rows(pts, digits, r1 - r0, c, windows))
    return np.concatenate(out)


def _signed_input(scalars, n: int):
    """(m, n) signed integers as a contiguous device array (unsigned input widened to int64)."""
    xp = _xp()
    s = _dev(scalars)
    if s.dtype.kind not in "iu":
        raise TypeError(f"signed MSMs take integer scalars, got {s.dtype}")
    if s.dtype.kind == "u":
        s = s.astype(np.int64 if s.dtype.itemsize < 8 else np.uint64)
        if s.dtype == np.uint64:
            if s.size and int(s.max()) >= 1 << 63:
                raise ValueError("scalars must fit in int64")
            s = s.astype(np.int64)
    return xp.ascontiguousarray(s.reshape(-1, n))


def msm_signed(points: np.ndarray | DevicePoints, scalars, c: int | None = None,
               cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) results for signed integer scalars, (n,) or (m, n), on the device.

    The number of windows follows the largest |scalar| (quantized tensors need one or two);
    the range is measured on the device.
    """
    pts = device_points(points, cache_key)
    n = pts.n
    if n == 0:
        return M._identities(1)
    s = _signed_input(scalars, n)
    if s.shape[0] == 0:
        return M._identities(0)
    return _signed_rows(pts, s, c, int(s.min()), int(s.max()))


BLIND_CHUNK = 8
"""Bits per chunk of a blinding scalar in :func:`msm_signed_blinded`."""
_CHUNKS = 256 // BLIND_CHUNK


def _blind_powers(H: np.ndarray) -> np.ndarray:
    """Affine [2^(8j) H for j < 32] (CPU kernels; computed once per cached base)."""
    jac = np.empty((_CHUNKS, 12), dtype=np.uint64)
    cur = np.empty((1, 12), dtype=np.uint64)
    C.vaffine_to_jac(np.ascontiguousarray(H, dtype=np.uint64).reshape(1, 8), cur)
    for j in range(_CHUNKS):
        jac[j] = cur[0]
        for _ in range(BLIND_CHUNK):
            nxt = np.empty_like(cur)
            C.vjac_double(cur, nxt)
            cur = nxt
    aff = np.empty((_CHUNKS, 8), dtype=np.uint64)
    C.vjac_to_affine(jac, aff)
    return aff


def _extended(points: np.ndarray, extra, tag: str, cache_key: Hashable | None) -> DevicePoints:
    """Device base [points, extra()], cached under (cache_key, tag) when a key is given."""
    def build() -> np.ndarray:
        return np.concatenate([M._check_points(points), extra()])

    if cache_key is None:
        return DevicePoints(build())
    return _cached((cache_key, tag), _fingerprint(points), build)


def msm_signed_blinded(points: np.ndarray, scalars, H: np.ndarray, blinds: np.ndarray,
                       c: int | None = None, cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) rows sum_i k[row, i] P_i + rho_row H for signed integers k (m, n) and
    Fr Montgomery blinds rho (m, 4), in one device pass.

    A full-width rho would make every row a full-width MSM; instead rho = sum_j rho_j 2^(8j)
    with bytes rho_j, and the base is extended by the fixed points 2^(8j) H (cached with it),
    so each row stays an MSM of small integers, n + 32 of them.
    """
    n = points.shape[0]
    m = np.shape(blinds)[0]
    s = _signed_input(scalars, n) if n else _xp().zeros((m, 0), dtype=np.int64)
    if s.shape[0] != m:
        raise ValueError(f"{s.shape[0]} rows of scalars but {m} blinds")
    if m == 0:
        return M._identities(0)
    H = np.ascontiguousarray(H, dtype=np.uint64).reshape(1, 8)
    base = _extended(points, lambda: _blind_powers(H), "blind-bytes:" + H.tobytes().hex(),
                     cache_key)
    canon = np.empty((m, 4), dtype=np.uint64)
    F.vfrom_mont(M.DR, np.ascontiguousarray(blinds, dtype=np.uint64).reshape(m, 4), canon)
    xp = _xp()
    wide = xp.empty((m, n + _CHUNKS), dtype=np.promote_types(s.dtype, np.int16))
    wide[:, :n] = s
    wide[:, n:] = _dev(canon.view(np.uint8).reshape(m, _CHUNKS))  # bytes of rho, LE
    lo, hi = (int(s.min()), int(s.max())) if n else (0, 0)
    return _signed_rows(base, wide, c, min(lo, 0), max(hi, 255))


def msm_mont_blinded(points: np.ndarray, scalars, H: np.ndarray, blinds: np.ndarray,
                     c: int | None = None, cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) rows sum_i k[row, i] P_i + rho_row H for Fr Montgomery k (m, n, 4)
    and rho (m, 4): the rows and blinds go to the device as they are and meet there."""
    n = points.shape[0]
    xp = _xp()
    m = np.shape(blinds)[0]
    s = _dev(scalars, np.uint64).reshape(m, n, 4)
    if m == 0:
        return M._identities(0)
    H = np.ascontiguousarray(H, dtype=np.uint64).reshape(1, 8)
    base = _extended(points, lambda: H, "blind:" + H.tobytes().hex(), cache_key)
    full = xp.empty((m, n + 1, 4), dtype=np.uint64)
    full[:, :n] = s
    full[:, n] = _dev(blinds, np.uint64).reshape(m, 4)
    return _field_rows(base, full, c, True)
