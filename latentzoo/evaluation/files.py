"""Every file an evaluation reads, read so that a bad one fails in one line naming it.

Checkpoints (:func:`load_model`), saved samples as a tensor file or a folder of images
(:func:`load_samples`) and a run's saved ``config.yaml`` (:func:`run_config`). A problem with
a file the user gave raises :class:`BadInputError`, whose message names the file and says what
is wrong with it: truncated, not a checkpoint, non-finite values, an unreadable image, a wrong
shape; the commands print it as their one line of error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from latentzoo.datamodules.base import to_model_input
from latentzoo.loading import load
from latentzoo.zoo import AutoencoderModule
from latentzoo.zoo.checkpoints import UnreadableCheckpointError

__all__ = ["IMAGE_SUFFIXES", "BadInputError", "load_model", "load_samples", "run_config"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class BadInputError(ValueError, SystemExit):
    """A file given to an evaluation that cannot be used; the message names it and says why.

    A ``ValueError`` for code that catches it, and a ``SystemExit`` carrying its message, so a
    script that does not catch it ends with that one line (exit status 1) and no traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message


def run_config(ckpt_path: str | Path) -> dict[str, Any] | None:
    """The run's saved ``config.yaml`` (``version_N/`` above ``checkpoints/``), if there is one
    that parses as a mapping."""
    path = Path(ckpt_path).resolve().parent.parent / "config.yaml"
    if not path.is_file():
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise BadInputError(f"{path} is not readable YAML ({str(err).splitlines()[0]})") from None
    return config if isinstance(config, dict) else None


def load_model(ckpt_path: str | Path) -> AutoencoderModule:
    """The model a checkpoint holds, whatever its class, with finite weights."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise BadInputError(f"no checkpoint at {path}")
    try:
        model = load(path, map_location="cpu")
    except UnreadableCheckpointError as err:
        raise BadInputError(str(err)) from None
    except Exception as err:  # readable, but its contents do not build a model
        first = (str(err).splitlines() or [""])[0][:200]
        raise BadInputError(
            f"{path} does not hold a loadable latentzoo model ({type(err).__name__}: {first})"
        ) from None
    bad = [name for name, t in model.state_dict().items()
           if t.is_floating_point() and not torch.isfinite(t).all()]  # fmt: skip
    if bad:
        raise BadInputError(
            f"{path} holds non-finite weights ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); take an earlier checkpoint"
        )
    return model


def load_samples(path: Path, data_shape: tuple[int, ...]) -> Tensor:
    """Saved samples as floats, (N, *data_shape): a tensor file or a folder of images.

    A tensor may be uint8 (0..255) or float in [0, 1] for images (any finite values for
    vectors); images in a folder are read in sorted name order, as grey or RGB as
    ``data_shape`` has 1 or 3 channels.

    Raises:
        BadInputError: The file is not a tensor file, an image is unreadable, a value is not
            finite, or the shape or range does not fit the data set.
    """
    if path.is_dir():
        x = _read_images(path, data_shape)
    else:
        try:
            x = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a file that is not its own
            raise BadInputError(
                f"{path} is not a tensor file written by torch.save ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:120] if str(err) else 'unreadable'})"
            ) from None
        if not isinstance(x, Tensor):
            raise BadInputError(f"{path} holds a {type(x).__name__}, not a tensor")
    if tuple(x.shape[1:]) != tuple(data_shape) or len(x) < 2:
        raise BadInputError(
            f"{path} has samples of shape {tuple(x.shape)}; the data set "
            f"needs (N >= 2, {', '.join(map(str, data_shape))})"
        )
    x = to_model_input(x)  # uint8 -> [0, 1]
    finite = torch.isfinite(x).flatten(1).all(1)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise BadInputError(
            f"{path} has non-finite values in {int((~finite).sum())} of {len(x)} samples "
            f"(the first: sample {first}); drop or fix them"
        )
    if len(data_shape) == 3 and (x.min() < 0 or x.max() > 1):
        raise BadInputError(
            f"{path} has images outside [0, 1] ({float(x.min()):.3g} to "
            f"{float(x.max()):.3g}); save them as uint8 or as floats in [0, 1]"
        )
    return x.float()


def _read_images(folder: Path, data_shape: tuple[int, ...]) -> Tensor:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(data_shape) != 3 or data_shape[0] not in (1, 3) or not files:
        raise BadInputError(
            f"--samples {folder} needs PNG/JPEG files and an image data set "
            f"with 1 or 3 channels (data shape {data_shape})"
        )
    mode = "L" if data_shape[0] == 1 else "RGB"
    arrays = []
    for file in files:
        try:
            with Image.open(file) as image:
                arrays.append(np.asarray(image.convert(mode)))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise BadInputError(
                f"{file} is not a readable image ({type(err).__name__}); remove or replace it"
            ) from None
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise BadInputError(f"the images in {folder} differ in size: {sorted(sizes)}")
    x = torch.from_numpy(np.stack(arrays))  # (N, H, W) or (N, H, W, 3) uint8
    return x[:, None] if mode == "L" else x.permute(0, 3, 1, 2)
