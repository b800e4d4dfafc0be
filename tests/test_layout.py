"""Packaging rules: a verifier installs light."""

from __future__ import annotations

import subprocess
import sys


def test_zk_imports_no_heavy_packages():
    code = (
        "import sys, pkgutil, importlib, zk\n"
        "for m in pkgutil.walk_packages(zk.__path__, 'zk.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('concrete', 'torch', 'transformers', 'fhe', 'pipeline', 'cupy')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_serving_stack_is_optional():
    """The verifier's and the file-based session's modules never import the serve extra."""
    code = (
        "import sys, pipeline.api, pipeline.session, pipeline.cli, pipeline.store\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('ray', 'fastapi', 'httpx', 'starlette', 'uvicorn')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
