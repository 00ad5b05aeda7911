"""torchvision CPU shim, run by ComfyUI's main.py before it imports comfy.* (prestartup hook).

Why: PyPI's x86_64 torchvision 0.28.0 wheel is a CUDA build. Next to the CPU torch 2.13.0 its _C.so
cannot load, so torchvision skips its compiled ops, and then its _meta_registrations.py fails with
"operator torchvision::nms does not exist" at import, which ComfyUI does at module level (fatal).

Fix: just before the first `import torchvision`, try to load _C.so; if that fails, declare the two op
schemas (nms, qnms) so the pure-Python part of torchvision imports. Compiled ops (nms, roi_align,
io.decode_jpeg) stay unavailable; ComfyUI does not need them. With a matching torchvision build the
load succeeds and nothing is changed. torch is imported lazily (inside the hook) so ComfyUI does not
warn "Torch already imported".
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType


class _TorchvisionCpuShim(importlib.abc.MetaPathFinder):
    """One-shot finder: acts on the first import of torchvision, then removes itself."""

    done = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torchvision" or _TorchvisionCpuShim.done:
            return None
        _TorchvisionCpuShim.done = True
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torchvision")
        if spec is None or spec.origin is None:
            return None
        import torch

        so = os.path.join(os.path.dirname(spec.origin), "_C.so")
        try:
            torch.ops.load_library(so)  # type: ignore[no-untyped-call]  # matching build: done
        except Exception:
            lib = torch.library.Library("torchvision", "DEF")  # type: ignore[no-untyped-call]
            for op in ("nms", "qnms"):
                schema = f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
                lib.define(schema)  # type: ignore[no-untyped-call]
            torch._torchvision_cpu_shim_lib = lib  # type: ignore[attr-defined]  # keep the library alive
        return spec


if "torchvision" not in sys.modules and not any(isinstance(f, _TorchvisionCpuShim) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionCpuShim())
