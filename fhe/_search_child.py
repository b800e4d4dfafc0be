"""The child process of ``fhe.search``: one concrete compilation (parameter search included).

Run by path, ``python _search_child.py WORKDIR`` (it imports only the standard library and
concrete, so it needs no package path). It reads, from WORKDIR, written by ``fhe.search``:

* ``circuit.mlir``: the circuit's MLIR text (``circuit.mlir``);
* ``configuration.json``: the concrete ``Configuration``'s fields (jsonpickle, as concrete's own
  ``Server.save(via_mlir=True)`` writes them), without the two restrictions, which are
* ``range_restriction.json`` / ``keyset_restriction.json`` (each optional, concrete's JSON);
* ``is_simulated``: ``1`` for a simulation server, ``0`` for an execution server;

compiles with ``concrete.fhe.Server.create`` and saves the server to ``WORKDIR/server.zip``
(``Server.save``; the parent loads it with ``Server.load``). A Python exception (concrete's
``NoParametersFound``, say) is written to ``WORKDIR/error.txt`` and the exit status is
``PYTHON_ERROR``. An abort inside concrete's native code kills this process only.
"""

import os
import shutil
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

PYTHON_ERROR = 3


def _exit_with_parent() -> None:
    """End this process when its parent is gone (killed mid-compile): nobody would load the
    server, and a large compile holds minutes of CPU and GBs of memory."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(workdir: str) -> int:
    _exit_with_parent()
    d = Path(workdir)
    try:
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import jsonpickle
        from concrete import fhe
        from concrete.compiler import KeysetRestriction, RangeRestriction

        fields = jsonpickle.loads((d / "configuration.json").read_text(encoding="utf-8"),
                                  keys=True)
        for name, kind in (("range_restriction", RangeRestriction),
                           ("keyset_restriction", KeysetRestriction)):
            path = d / f"{name}.json"
            fields[name] = kind.from_json(path.read_text(encoding="utf-8")) if path.exists() else None
        configuration = fhe.Configuration().fork(**fields)
        is_simulated = (d / "is_simulated").read_text(encoding="utf-8") == "1"
        mlir = (d / "circuit.mlir").read_text(encoding="utf-8")
        server = fhe.Server.create(mlir, configuration, is_simulated=is_simulated)
        server.save(d / "server.zip")
        # Server.create compiled into a temporary folder of its own that nothing removes
        # (Server.cleanup is a no-op in concrete 2.11); the zip holds all of it
        shutil.rmtree(server._library.get_output_dir_path(), ignore_errors=True)  # noqa: SLF001
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
        (d / "error.txt").write_text(f"{type(e).__name__}: {e}\n\n{traceback.format_exc()}",
                                     encoding="utf-8")
        return PYTHON_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
