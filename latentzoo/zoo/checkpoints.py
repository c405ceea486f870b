"""Which model class a checkpoint holds, found without importing anything the file names.

A checkpoint says which class wrote it in one of two places: every zoo model stores its import
path under :data:`CHECKPOINT_CLASS_KEY` (``"latentzoo_class"``), and a run of the ``latentzoo``
command also has LightningCLI's ``_class_path`` among the hyper-parameters. Checkpoints written
before either existed are matched against the model registry: by the names of their
hyper-parameters (``save_hyperparameters`` records the ``__init__`` arguments of every class up
the chain, so they name the class), then by their state-dict keys; a file that still fits
several classes is refused with the list, never loaded as a guess.

A recorded class is resolved by :meth:`latentzoo.registry.Registry.resolve`: through the
registry or among the modules already imported, never by importing what a file names (like
Lightning's own loader, opening a checkpoint runs no code that the user did not import).
:meth:`latentzoo.zoo.AutoencoderModule.load_from_checkpoint` uses this module; so does the CLI's
check of ``--ckpt_path`` against ``--model`` (:mod:`latentzoo.loading`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from latentzoo.registry import Registry, RegistryError

__all__ = [
    "CHECKPOINT_CLASS_KEY",
    "CheckpointMismatchError",
    "UnreadableCheckpointError",
    "checkpoint_model_class",
    "fitting_classes",
    "init_arguments",
    "read_checkpoint",
    "recorded_class",
]

CHECKPOINT_CLASS_KEY = "latentzoo_class"


class CheckpointMismatchError(ValueError):
    """A checkpoint holds another model than the one asked for."""


class UnreadableCheckpointError(ValueError):
    """A file that is not a readable checkpoint (truncated, not a torch file, no weights)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary, tensors memory-mapped: peeking at hyper-parameters is cheap.

    Raises:
        FileNotFoundError: No file at ``path``.
        UnreadableCheckpointError: The file is not a whole checkpoint; the message names it
            and says what is wrong.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # a damaged file makes torch's reader fail in many ways
        raise UnreadableCheckpointError(
            f"{path} is not a readable checkpoint (truncated or not written by torch.save: "
            f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]})"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UnreadableCheckpointError(
            f"{path} holds no model weights (no 'state_dict'); pass a Lightning checkpoint "
            f"such as runs/<Model>-<Data>/version_N/checkpoints/last.ckpt"
        )
    return checkpoint


def recorded_class(checkpoint: Mapping[str, Any]) -> str | None:
    """The class path the checkpoint records (latentzoo's key, else LightningCLI's)."""
    hparams = checkpoint.get("hyper_parameters") or {}
    found = checkpoint.get(CHECKPOINT_CLASS_KEY) or hparams.get("_class_path")
    return str(found) if found else None


def checkpoint_model_class(
    checkpoint: Mapping[str, Any],
    path: str | Path,
    expected: type,
    models: Registry[Any],
    base: type,
) -> Any:
    """The class to build for ``expected.load_from_checkpoint(path)``.

    The class the file records if it is ``expected`` or a subclass; for a file that records none,
    the one registered class its hyper-parameters and weights fit, or ``expected`` itself when it
    is among those that fit (a concrete class accepts a file that fits it and a subclass alike).

    Args:
        models: The model registry (:data:`latentzoo.zoo.base.MODELS`).
        base: The zoo's base class, which a file that fits no registered class cannot be.
    """
    recorded = recorded_class(checkpoint)
    if recorded is not None:
        try:
            held = models.resolve(recorded)
        except RegistryError as err:
            raise ValueError(f"{path} holds a {err}") from None
        if not issubclass(held, expected):
            raise CheckpointMismatchError(
                f"{path} holds a {held.__name__}, not a {expected.__name__}; load it with "
                f"latentzoo.load(path) (any zoo model) or "
                f"{held.__name__}.load_from_checkpoint(path)"
            )
        return held
    fits = fitting_classes(checkpoint, models)
    if expected in fits or (expected is not base and not fits):
        return expected  # a file that fits no registered class: the caller's class decides
    fits = [c for c in fits if issubclass(c, expected)]
    if len(fits) == 1:
        return fits[0]
    names = ", ".join(c.__name__ for c in fits) or "none"
    raise ValueError(
        f"{path} records no model class, and its hyper-parameters fit these registered models: "
        f"{names}; say which with latentzoo.load(path, cls=<the class>)"
    )


def fitting_classes(checkpoint: Mapping[str, Any], models: Registry[Any]) -> list[Any]:
    """Registered classes whose ``__init__`` arguments are the checkpoint's hyper-parameters.

    Where several fit by name (a subclass that adds no argument), those whose state-dict keys
    are the checkpoint's; building them is the only way to know their weights' names.
    """
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items()
               if not k.startswith("_")}  # fmt: skip
    classes = [models.get(n) for n in models.list()]
    fits = [c for c in classes if init_arguments(c) == set(hparams)]
    if len(fits) > 1:
        keys = set(checkpoint.get("state_dict") or {})
        fits = [c for c in fits if set(_state_dict_keys(c, hparams)) == keys]
    return fits


def init_arguments(cls: type) -> set[str]:
    """The names of the ``__init__`` arguments up the class chain (``save_hyperparameters``'s)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(vars(klass)["__init__"]).parameters.values()
            names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names - {"self"}


def _state_dict_keys(cls: type, hparams: Mapping[str, Any]) -> list[str]:
    try:
        return list(cls(**hparams).state_dict())
    except (TypeError, ValueError):  # these hyper-parameters do not build this class
        return []
