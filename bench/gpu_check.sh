#!/usr/bin/env bash
# GPU check (issue 14): install the project on a GPU machine without network, run the GPU tests
# on the real device, then the device-against-CPU MSM and Hyrax benchmark and zkAttn proving
# with and without the device.
#
#     bash bench/gpu_check.sh            # from anywhere; PYTHON=... picks the interpreter
#
# Written for the project's GPU machines as they are: one NVIDIA H100 or H200, Python 3.12 with
# numpy, numba, numba-cuda, cupy-cuda13x, pytest and hypothesis installed, no network.
# Last, the whole-model prover's CPU row (bench/model.py, SmolLM2 shapes at L = 32, all cores). The
# project's other pure-Python dependencies come from bench/wheels: py_ecc, galois and
# typing_extensions (galois needs it; the GPU image has it). py_ecc's eth-utils/pydantic chain
# is not carried: the project imports only py_ecc.optimized_bn128, which does not use it.
# Nothing is downloaded. Budget: about 4-5 minutes (2026-11-26 on an H100: 105 s without the
# zkAttn step, which then took about 60 s warm and over 100 s cold); hard cuts: the tests at
# 200 s, the MSM benchmark at 150 s, each zkAttn run at 200 s. The simulator tests are left to
# CI. On a machine without a GPU the device tests skip and the benchmarks say so. Exit status:
# non-zero if the install, the tests or a benchmark failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
START=$(date +%s)
export PYTHONUNBUFFERED=1
# numba-cuda finds NVVM through CUDA_HOME when no nvidia-nvvm wheel is installed
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
status=0

step() { echo; echo "== $1 ($(( $(date +%s) - START )) s)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "(nvidia-smi not found)"
"$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("numpy", "numba", "numba_cuda", "cupy", "pytest", "hypothesis", "setuptools"):
    try:
        print(f"{name:12s}", getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as e:
        print(f"{name:12s} missing ({type(e).__name__}: {e})")
try:
    import cupy
    print("CuPy sees a CUDA device:", bool(cupy.cuda.is_available()))
except Exception as e:
    print("CuPy sees no CUDA device:", e)
EOF

step "install (carried wheels and the project, --no-deps, no index)"
# a package already installed (any version) is left as it is
"$PY" -m pip install -q --no-index --no-deps --find-links bench/wheels \
    py_ecc galois typing_extensions || status=1
if ! "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . ; then
    echo "pip install -e . failed; the checks below import the tree through PYTHONPATH instead"
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import py_ecc.optimized_bn128, galois, zk.commit.hyrax, gpu.dispatch; print('imports ok')" \
    || { echo "the project does not import: stopping"; exit 1; }

step "numba.cuda on a CuPy array (smoke test)"
"$PY" - <<'EOF' || status=1
import numpy as np
from gpu import dispatch
if not dispatch.cupy_device_available():
    print("no CUDA device visible to CuPy: device tests will skip, the benchmark will say so")
else:
    import cupy
    from numba import cuda

    import gpu.cuda_kernels  # noqa: F401 (numba-cuda's numpy-2.5 shim)

    @cuda.jit
    def k(a):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = a[i] * np.uint64(3) + np.uint64(1)

    a = cupy.arange(1000, dtype=np.uint64)
    k[8, 128](cuda.as_cuda_array(a, sync=False))
    assert (a.get() == np.arange(1000, dtype=np.uint64) * 3 + 1).all()
    print("numba.cuda kernel on a CuPy array: ok")
EOF

step "GPU tests (tests/gpu on the real device, and the CPU kernels; the simulator runs in CI)"
timeout 200 "$PY" -m pytest tests/gpu -q -rs -p no:cacheprovider -k "not simulator" || status=1

step "benchmark: bench/msm.py --device gpu"
timeout 150 "$PY" bench/msm.py --device gpu || status=1

step "benchmark: zkAttn on a GPT-2-size head, MSMs on the GPU (auto) and on the CPU only"
# CPU first: on a fresh machine it also compiles the protocol's CPU kernels (~100 s cold)
for dev in cpu auto; do
    timeout 200 "$PY" bench/attention.py --lengths 32 128 --bits 4 --repeats 3 --device $dev \
        || status=1
done

step "whole model on this machine's CPUs: SmolLM2-135M's shapes (30 layers, random weights), L = 32"
# the whole-model prover has no device kernels yet (issue 24): this row is the CPU baseline a
# device prover must beat, measured on the GPU machine's cores; a timeout is reported, not fatal
# (one row in this process: --row prints its JSON; a timeout leaves no child behind)
timeout 180 "$PY" bench/model.py --row smollm2-shape 32 --threads "$(nproc)" \
    || echo "(whole-model row did not finish within 180 s)"

step "done, status $status"
exit $status
