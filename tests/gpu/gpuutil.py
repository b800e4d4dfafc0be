"""The oracle shared by the CPU MSM kernel tests (test_msm, test_small_msm)."""

from py_ecc import optimized_bn128 as bn


def py_ecc_msm(points, ks):
    """sum_i k_i P_i computed by py_ecc (scalars reduced mod r): the reference every MSM kernel
    is checked against."""
    acc = bn.Z1
    for p, k in zip(points, ks):
        acc = bn.add(acc, bn.multiply(p, k % bn.curve_order))
    return acc
