"""concrete's parameter search of a circuit, run in a child process when it may abort.

Why: concrete-python 2.11.0's multi-parameter optimizer can abort the whole process instead of
raising. With keyswitch levels capped (``fhe.compile.key_budget_restriction``, levels <= 3) the
GPT-2-size exact head ``HeadConfig(768, 64, 6)`` makes it panic after minutes of search::

    concrete-optimizer/src/optimization/dag/multi_parameters/optimize/mod.rs:1178:18:
    internal error: entered unreachable code
    panic in ffi function concrete_optimizer_cpp::ffi::Dag::optimize_multi, aborting.

(``optimize`` found no complete solution in its rounds and no infeasible constraint to report,
and its ``match`` ends in ``_ => unreachable!()``), then SIGABRT, or exit code 139 when the
abort's cleanup segfaults. Nothing in Python can catch that, so a search that may hit it runs in
a child process (``fhe/_search_child.py``: concrete's ``Server.create`` on the circuit's MLIR,
then ``Server.save``) and this process loads the result (``Server.load``, the path the project's
own servers take, ``fhe.server``). The circuit is the same MLIR either way; only the parameters
the optimizer picks depend on the search space. Remove this module (compile in process) once
concrete's optimizer reports a failure there as an error.

``Plan`` is one search space to try, ``IsolatedSearch`` tries a circuit's plans in order for each
runtime concrete builds lazily (execution: keys, encrypt, run, statistics; simulation:
``simulate``) and records every attempt, ``create_server`` is one child compilation.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from concrete import fhe

from .errors import FheCompileError

__all__ = ["Plan", "IsolatedSearch", "SearchFailure", "create_server"]

CHILD = Path(__file__).with_name("_search_child.py")
PYTHON_ERROR = 3  # the child's exit status after a Python exception (fhe/_search_child.py)


class SearchFailure(Exception):
    """A child compilation found no server: ``aborted`` (killed by concrete's native code)
    or a Python error in the child (concrete's ``NoParametersFound``, say); ``detail`` is the
    line that says why."""

    def __init__(self, aborted: bool, detail: str):
        super().__init__(detail)
        self.aborted = aborted
        self.detail = detail


def _config_fields(configuration: fhe.Configuration) -> tuple[dict, dict]:
    """(the configuration's fields without the restrictions, the restrictions' JSON)."""
    fields = dict(configuration.__dict__)
    restrictions = {}
    for name in ("range_restriction", "keyset_restriction"):
        r = fields.pop(name, None)
        if r is not None:
            restrictions[name] = r.to_json()
    return fields, restrictions


def _abort_detail(returncode: int, log: str) -> str:
    """How an aborted child ended, after its first panic message if it printed one
    ("concrete-optimizer panicked at src/...rs:LINE: MESSAGE")."""
    try:
        how = (f"killed by {signal.Signals(-returncode).name}" if returncode < 0
               else f"exit code {returncode}")
    except ValueError:
        how = f"exit code {returncode}"
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "panicked at" in line:
            where = line.split("panicked at", 1)[1].strip().rstrip(":")
            crate, _, path = where.rpartition("/src/")
            if crate:
                where = f"{crate.rsplit('/', 1)[-1]} src/{path}"
            said = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"panicked at {where}: {said}; {how}"
    return how


def create_server(mlir: str, configuration: fhe.Configuration, is_simulated: bool) -> fhe.Server:
    """concrete's ``Server.create(mlir, configuration)`` in a child process, loaded here.

    Raises ``SearchFailure`` if the child raised (``aborted`` False) or died (``aborted`` True);
    this process is never taken down."""
    import jsonpickle

    fields, restrictions = _config_fields(configuration)
    with tempfile.TemporaryDirectory(prefix="fhe-search-") as tmp:
        d = Path(tmp)
        (d / "circuit.mlir").write_text(mlir, encoding="utf-8")
        (d / "configuration.json").write_text(jsonpickle.dumps(fields, keys=True), encoding="utf-8")
        for name, text in restrictions.items():
            (d / f"{name}.json").write_text(text, encoding="utf-8")
        (d / "is_simulated").write_text("1" if is_simulated else "0", encoding="utf-8")
        env = dict(os.environ, RUST_BACKTRACE="0")
        with open(d / "child.log", "wb") as log:
            rc = subprocess.run([sys.executable, str(CHILD), tmp], stdout=log, stderr=log,
                                env=env, check=False).returncode
        text = (d / "child.log").read_text(encoding="utf-8", errors="replace")
        if configuration.verbose or configuration.show_optimizer:
            sys.stdout.write(text)
        if rc == 0:
            return fhe.Server.load(d / "server.zip")  # unpacked into a folder of its own
        if rc == PYTHON_ERROR and (d / "error.txt").exists():
            first = (d / "error.txt").read_text(encoding="utf-8").split("\n\n")[0].strip()
            kind, _, message = first.partition(": ")
            last = (message.strip().splitlines() or [""])[-1]
            raise SearchFailure(False, f"{kind}: {last}")
        raise SearchFailure(True, _abort_detail(rc, text))


@dataclasses.dataclass(frozen=True)
class Plan:
    """One search space: ``name`` says it in words, ``max_ks_level`` is its keyswitch-level cap
    (None: concrete's own range), ``configuration`` is what concrete compiles with."""

    name: str
    max_ks_level: Optional[int]
    configuration: fhe.Configuration


class IsolatedSearch:
    """The parameter searches of one circuit, each in a child process, over ``plans`` in order.

    A plan that finds no parameters (concrete raises or aborts) is dropped for this runtime and
    every later one, and the next plan is tried; ``log`` has one line per attempt. ``install``
    makes the circuit's execution and simulation runtimes (built lazily by concrete) come from
    here. With no plan left, ``FheCompileError`` names the head and every plan tried."""

    def __init__(self, circuit: fhe.Circuit, label: str, plans: list[Plan]):
        if not plans:
            raise ValueError("no plan to search")
        self.mlir = circuit.mlir
        self.label = label
        self.plans = list(plans)
        self.log: list[str] = []
        self.dropped: list[str] = []  # the plans that found no parameters, and why
        self.used: dict[str, Plan] = {}  # runtime -> the plan its parameters come from

    def server(self, runtime: str) -> fhe.Server:
        failures = []
        while self.plans:
            plan = self.plans[0]
            try:
                server = create_server(self.mlir, plan.configuration, runtime == "simulation")
            except SearchFailure as e:
                what = "concrete aborted" if e.aborted else "no parameters"
                failures.append(f"{plan.name}: {what} ({e.detail})")
                self.log.append(f"{runtime}: {failures[-1]}")
                self.dropped.append(failures[-1])
                self.plans.pop(0)
                continue
            self.log.append(f"{runtime}: {plan.name}: parameters found")
            self.used[runtime] = plan
            return server
        raise FheCompileError(
            f"no FHE parameters for head {self.label} ({runtime} circuit), concrete-python "
            f"{fhe.__version__}: " + "; ".join(failures or ["every search space failed before"]))

    def install(self, circuit: fhe.Circuit) -> None:
        """The circuit's runtimes from this search (as concrete's FheModule builds them)."""
        from concrete.fhe.compilation.client import Client
        from concrete.fhe.compilation.module import ExecutionRt, SimulationRt
        from concrete.fhe.compilation.utils import Lazy

        module = circuit._module  # noqa: SLF001 - concrete 2.11's FheModule (see module doc)

        def execution():
            server = self.server("execution")
            cfg = self.used["execution"].configuration
            return ExecutionRt(Client(server.client_specs, None, is_simulated=False), server,
                               cfg.auto_schedule_run)

        def simulation():
            server = self.server("simulation")
            return SimulationRt(Client(server.client_specs, is_simulated=True), server)

        module.execution_runtime = Lazy(execution)
        module.simulation_runtime = Lazy(simulation)
