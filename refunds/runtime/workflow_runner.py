"""The workflow sandbox as the workers here run it: Temporal's sandbox, its determinism checks
untouched, without two costs it paid on every refund for nothing (issue 11).

- Each run executes its workflow's module afresh inside the sandbox, so no state leaks between
  runs. Without a bytecode cache (`PYTHONDONTWRITEBYTECODE`, a read-only image) that import
  also compiled the module's source every time: here each source text is compiled once per
  process, and its code still executed per run, in the sandbox.
- For every payload sequence it converts, the SDK asks the run for a serialization context by
  executing code inside the sandbox. A data converter that ignores contexts (no codec, no
  external storage, as ours) converts the same with none, so such a runner answers at once.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import CodeType, ModuleType

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info

# One of each kind of context these workflows' payloads are converted under: the run's own, and
# an activity's (regular and local). None of them runs child workflows or Nexus operations.
_PROBES: tuple[SerializationContext, ...] = (
    WorkflowSerializationContext(namespace="probe", workflow_id="probe"),
    ActivitySerializationContext(
        namespace="probe",
        workflow_id="probe",
        workflow_type="probe",
        activity_type="probe",
        activity_task_queue="probe",
        is_local=False,
        activity_id="probe",
    ),
)
# What the SDK's sandbox answers itself when it has no store context to give.
_NO_STORE = StorageDriverStoreContext(target=None)


def workflow_runner(
    data_converter: DataConverter, workflows: Sequence[type]
) -> SandboxedWorkflowRunner:
    """The runner for a worker of `workflows` whose client converts with `data_converter`."""
    compile_once(_modules_of(workflows))
    return (
        ContextFreeSandboxRunner() if ignores_context(data_converter) else SandboxedWorkflowRunner()
    )


def ignores_context(data_converter: DataConverter) -> bool:
    """Whether `data_converter` converts the same under every context: no external storage
    (its store context is asked for apart), and no part of it that takes a serialization
    context (the SDK's `with_context` then hands back the converter itself)."""
    if data_converter.external_storage is not None:
        return False
    return all(data_converter.with_context(probe) is data_converter for probe in _PROBES)


@dataclass(frozen=True)
class ContextFreeSandboxRunner(SandboxedWorkflowRunner):
    """The default sandbox (same restrictions, same per-run module), for a worker whose data
    converter ignores serialization contexts (`ignores_context`)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


class _ContextFreeInstance(WorkflowInstance):
    """A sandboxed run; its payloads convert with no context, as the SDK's base contract allows
    (`None`: no context is set), so the SDK does not run code in the sandbox to ask for one."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        return None

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return _NO_STORE

    def get_info(self) -> Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self._sandboxed.get_thread_id()


# ---- compiled once per process ------------------------------------------------------------


class _CompiledOnceLoader(importlib.machinery.SourceFileLoader):
    """Reads the module's source as usual; the same source text at the same path compiles once."""

    _code: dict[tuple[str, bytes], CodeType] = {}

    def get_code(self, fullname: str) -> CodeType | None:
        path = self.get_filename(fullname)
        key = (path, self.get_data(path))
        code = self._code.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is not None:
                self._code[key] = code
        return code


class _CompiledOnceFinder(importlib.abc.MetaPathFinder):
    """Finds the named modules where Python would, and loads them with `_CompiledOnceLoader`."""

    def __init__(self) -> None:
        self.modules: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return None  # not plain source on disk: left to the usual finders
        assert spec.origin is not None
        spec.loader = _CompiledOnceLoader(fullname, spec.origin)
        return spec


_FINDER = _CompiledOnceFinder()


def compile_once(modules: Iterable[str]) -> None:
    """From now on, an import of one of `modules` (the sandbox's per-run ones included) reuses
    the code compiled for the same source; executing it is still each import's own."""
    _FINDER.modules.update(modules)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _modules_of(workflows: Sequence[type]) -> set[str]:
    """The modules the sandbox imports afresh for these workflows: each one's own module and
    its parent packages (their imports passed through are the host's, never re-imported)."""
    names: set[str] = set()
    for cls in workflows:
        parts = cls.__module__.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names
