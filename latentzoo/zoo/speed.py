"""How a model runs, not what it computes: memory format, optimizer kernels, compilation.

:class:`SpeedSettings` is one switch per way of running the same training step faster. Each one
changes the order of floating-point operations only (results agree to float rounding,
``tests/zoo/test_speed.py`` states the tolerance), never a checkpoint's contents, what resume
restores, or what the finite-loss guard sees:

- ``channels_last``: the nets' 4-D weights and the image batches in NHWC order, the layout
  oneDNN's convolutions (CPU) and cuDNN's tensor-core kernels (GPU) run fastest in. A parameter
  keeps its identity (optimizers built before the switch still own it), and a state dict holds
  the same values in either layout: saving writes the numbers, loading copies them into the
  parameter's own layout, so checkpoints of either kind load into models of either kind.
- ``optimizer``: torch's kernel for the optimizers' update, ``"foreach"`` (one multi-tensor call
  per operation) or ``"fused"`` (one fused kernel per step where the optimizer class has one, as
  Adam does on CPU and CUDA; its foreach kernel where it has none, as RMSprop). ``"default"`` is
  torch's choice: foreach on CUDA, a per-parameter loop on CPU. The choice is an option of the
  optimizer's parameter groups, so it is saved with the optimizer state and a resumed run keeps
  the kernel it was saved with (``torch.optim.Optimizer.load_state_dict`` restores the options).
- ``compile``: ``torch.compile`` of the model's sub-networks named in its ``compiled_nets``
  (encoder and decoder), in place (``nn.Module.compile``: the state dict's keys stay as they
  are), with the given mode; ``"reduce-overhead"`` records CUDA graphs where shapes are static
  (training batches are: the loaders drop the last incomplete batch). The loss terms around the
  nets run eagerly, and so does a critic trained through a gradient penalty: AOT autograd
  takes no double backward.

A model reads its settings from its :attr:`~latentzoo.zoo.base.AutoencoderModule.speed` attribute
when Lightning calls ``configure_model`` (before the weights of a resumed run are restored and
the optimizers built), and the datamodules ask the model for :attr:`input_memory_format`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn
from torch.optim import Optimizer

__all__ = ["CompileMode", "OptimizerKernel", "SpeedSettings", "select_kernel", "speed_up"]

OptimizerKernel = Literal["default", "foreach", "fused"]
CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune-no-cudagraphs"]


@dataclass(frozen=True)
class SpeedSettings:
    """The ways a model's training step may run.

    The defaults are the settings that measured faster on a 2-core CPU (``perf/speed.py``, the
    table in docs/benchmarks.md: 1.07-1.21x the images/s of the eager NCHW step with torch's
    default optimizer loop for the conv models), at equal numerics; ``compile`` measured no gain
    there and stays off. ``SpeedSettings(channels_last=False, optimizer="default")`` is the step
    as it was.

    Attributes:
        channels_last: Run the conv nets and image batches in NHWC memory order.
        optimizer: The optimizers' update kernel (see the module docstring).
        compile: ``torch.compile`` mode of the sub-networks, or ``"off"``.
    """

    channels_last: bool = True
    optimizer: OptimizerKernel = "fused"
    compile: CompileMode = "off"

    def __post_init__(self) -> None:
        for name, kind in (("optimizer", OptimizerKernel), ("compile", CompileMode)):
            value, allowed = getattr(self, name), get_args(kind)
            if value not in allowed:
                raise ValueError(f"SpeedSettings.{name} must be one of {allowed}, got {value!r}")

    def memory_format(self, data_shape: Sequence[int]) -> torch.memory_format:
        """The layout image batches of ``data_shape`` should have; vectors keep theirs."""
        if self.channels_last and len(data_shape) == 3:
            return torch.channels_last
        return torch.preserve_format


def speed_up(module: nn.Module, settings: SpeedSettings, nets: Sequence[str] = ()) -> None:
    """Apply ``settings`` to ``module`` in place; idempotent, so safe to call once per stage.

    Parameters are converted through ``param.data`` (``nn.Module._apply``), so optimizers that
    already hold them keep owning them. ``nets`` names the sub-modules to compile.
    """
    if settings.channels_last:
        module.to(memory_format=torch.channels_last)
    if settings.compile != "off":
        for name in nets:
            getattr(module, name).compile(mode=settings.compile)


def select_kernel(optimizer: Optimizer, kernel: OptimizerKernel) -> Optimizer:
    """Make ``optimizer`` step with torch's ``kernel``; returns it for chaining.

    ``"fused"`` leaves an optimizer class without a fused kernel (RMSprop) at torch's default:
    its foreach kernel measured slower for the WAE-GP / LMGAE critics on a 2-core CPU
    (``perf/speed.py``); an optimizer with neither option (not from ``torch.optim``) is left as
    it is. Set before the first step: the options live in the parameter groups (as a learning
    rate does), and Adam, AdamW and RMSprop read them on every step.
    """
    if kernel == "default":
        return optimizer
    options = optimizer.defaults
    use_fused = kernel == "fused" and "fused" in options
    if kernel == "fused" and not use_fused:
        return optimizer
    if not use_fused and "foreach" not in options:
        return optimizer
    for group in optimizer.param_groups:
        if use_fused:
            group["fused"], group["foreach"] = True, False
        else:
            group["foreach"] = True
            if "fused" in group:
                group["fused"] = None
    return optimizer
