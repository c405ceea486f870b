"""Load any zoo checkpoint without naming its class, and check a checkpoint against ``--model``.

Which class a checkpoint holds is found by :mod:`latentzoo.zoo.checkpoints` (the class it
records, else the registered classes its hyper-parameters and weights fit), without importing
anything the file names.

    model = latentzoo.load("runs/WAEGP-FashionMNIST/checkpoints/last.ckpt")

The CLI calls :func:`check_checkpoint_args` before LightningCLI reads ``--ckpt_path``'s
hyper-parameters into the config: what the user left out comes from the checkpoint, but a
class or argument they set (on the command line or in a config file) that the checkpoint
contradicts is an error, where LightningCLI would take the checkpoint's without a word.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser, Namespace

from latentzoo.registry import RegistryError
from latentzoo.zoo.base import MODELS, AutoencoderModule
from latentzoo.zoo.checkpoints import (
    CheckpointMismatchError,
    fitting_classes,
    read_checkpoint,
    recorded_class,
)

__all__ = [
    "CheckpointMismatchError",
    "check_checkpoint_args",
    "check_checkpoint_matches",
    "given_model_keys",
    "load",
]


def load(
    path: str | Path,
    map_location: Any = "cpu",
    *,
    cls: type[AutoencoderModule] = AutoencoderModule,
    **overrides: Any,
) -> AutoencoderModule:
    """The model in the zoo checkpoint at ``path``, of whichever class wrote it.

    Args:
        path: A Lightning checkpoint of any zoo model (or registered plugin model).
        map_location: Where the tensors go, as in ``torch.load``.
        cls: The class the file holds, needed only for an old checkpoint that records no class
            and whose hyper-parameters fit several; a recorded class must be ``cls`` or a
            subclass of it.
        **overrides: Constructor arguments that replace the saved hyper-parameters, as in
            ``load_from_checkpoint`` (the weights must still fit).

    Raises:
        FileNotFoundError: No file at ``path``.
        latentzoo.zoo.checkpoints.UnreadableCheckpointError: A truncated or foreign file.
    """
    return cls.load_from_checkpoint(path, map_location=map_location, **overrides)


def _resolve(class_path: str, path: str | Path) -> type[AutoencoderModule]:
    try:
        return MODELS.resolve(class_path)
    except RegistryError as err:
        raise ValueError(f"{path} holds a {err}") from None


# -- a checkpoint against the command line ------------------------------------------------------


def check_checkpoint_args(parser: ArgumentParser, config: Namespace) -> None:
    """Exit with one line where ``--ckpt_path`` holds another model than ``--model`` asks for.

    Call it after parsing and before LightningCLI reads the checkpoint's hyper-parameters into
    the config (``LightningCLI.parse_arguments``), with ``ckpt_path`` resolved to a file;
    a ``ckpt_path`` that is not a file (``last`` before it resolves) is left alone.
    """
    command = config.get("subcommand")
    section = config[command] if command else config
    path = section.get("ckpt_path")
    if not path or not Path(path).is_file():
        return
    typed = getattr(parser, "typed_args", None)  # latentzoo.parsing.LatentzooArgumentParser's
    typed = sys.argv[1:] if typed is None else typed
    try:
        check_checkpoint_matches(path, section.model, given_model_keys(typed, command))
    except ValueError as err:  # a mismatch, or a class that cannot be resolved
        parser.exit(2, f"error: {err}\n")


def check_checkpoint_matches(path: str | Path, model: Namespace, given: Mapping[str, str]) -> None:
    """Raise :class:`CheckpointMismatchError` where the checkpoint contradicts what was given.

    LightningCLI replaces ``--model`` and its arguments by a checkpoint's hyper-parameters
    without a word; that is right for what the user left out and wrong for what they set.

    Args:
        path: The checkpoint (resolved: a file).
        model: The ``model`` section parsed from the command line and config files:
            ``class_path`` and ``init_args``.
        given: The keys the user set explicitly (``"class_path"`` and argument names), each
            with where it was set (``"--model.latent_dim"``, ``"config.yaml"``); see
            :func:`given_model_keys`.
    """
    if not given:
        return
    checkpoint = read_checkpoint(path)
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items()
               if not k.startswith("_")}  # fmt: skip
    wanted = _resolve(str(model.class_path), "--model")
    recorded = recorded_class(checkpoint)
    held = [_resolve(recorded, path)] if recorded else fitting_classes(checkpoint, MODELS)
    if "class_path" in given and held and wanted not in held:
        summary = _describe(hparams, ["latent_dim"])
        raise CheckpointMismatchError(
            f"checkpoint {path} holds a {held[0].__name__}{summary}, but {given['class_path']} "
            f"asks for a {wanted.__name__}; drop it to use the checkpoint's model, or pass a "
            f"{wanted.__name__} checkpoint"
        )
    init_args = model.get("init_args") or Namespace()
    differ = [k for k in given if k in hparams and k in init_args
              and _plain(hparams[k]) != _plain(init_args[k])]  # fmt: skip
    if differ:
        where = sorted({given[k] for k in differ})
        asked = ", ".join(f"{k}={init_args[k]!r}" for k in differ)
        raise CheckpointMismatchError(
            f"checkpoint {path} holds a {(held or [wanted])[0].__name__}"
            f"{_describe(hparams, differ)}, but "
            f"{' and '.join(where)} set{'s' if len(where) == 1 else ''} {asked}; drop "
            f"{'it' if len(where) == 1 else 'them'} to use the checkpoint's values, or pass a "
            f"checkpoint trained with them"
        )


def given_model_keys(args: Sequence[str], command: str | None) -> dict[str, str]:
    """The model settings the user gave: ``"class_path"`` and argument names -> where.

    A setting is given when it is on the command line (``--model X``, ``--model.latent_dim``,
    ``--model '{...}'``, ``--model file.yaml``) or in a config file's model section, even where
    it equals the default: the user asked for that value.
    """
    given: dict[str, str] = {}
    for i, token in enumerate(args):
        flag, eq, inline = token.partition("=")
        value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
        if flag in ("--config", "-c"):
            data = _read_yaml(value)
            section = data.get("model", (data.get(command or "") or {}).get("model"))
            given.update(_section_keys(section, value))
        elif flag == "--model" and Path(value).is_file():  # a YAML file of the model section
            given.update(_section_keys(_read_yaml(value), value))
        elif flag == "--model":  # a class name, or the section inline: '{"init_args": ...}'
            section = yaml.safe_load(value) if value.startswith("{") else value
            given.update(_section_keys(section, f"--model {value}"))
        elif flag.startswith("--model.") and flag != "--model.help":
            name = re.sub(r"^--model\.(init_args\.|dict_kwargs\.)?", "", flag)
            given[name] = f"--model.{name}" if name != "class_path" else f"--model {value}"
    return given


def _section_keys(section: Any, where: str) -> dict[str, str]:
    if isinstance(section, str):
        return {"class_path": where}
    if not isinstance(section, dict):
        return {}
    keys = {k for k in section if k not in ("class_path", "init_args", "dict_kwargs")}
    for nested in ("init_args", "dict_kwargs"):
        keys |= set(section.get(nested) or {})
    keys |= {"class_path"} & set(section)
    return dict.fromkeys(sorted(keys), where)


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}  # the parser has said what is wrong with this file already
    return data if isinstance(data, dict) else {}


def _describe(hparams: Mapping[str, Any], keys: list[str]) -> str:
    shown = [f"{k}={hparams[k]!r}" for k in keys if k in hparams]
    return f" ({', '.join(shown)})" if shown else ""


def _plain(value: Any) -> Any:
    """A value as YAML would hold it, so a saved ``(1, 28, 28)`` equals a parsed ``[1, 28, 28]``
    and a saved nested class (a VAE's prior) its parsed ``Namespace``."""
    if isinstance(value, Namespace):
        return _plain(value.as_dict())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
