"""Write random images in Fashion-MNIST's IDX files, for timing runs where the data is absent.

    python perf/fake_fashion_mnist.py DATA_DIR   # DATA_DIR/FashionMNIST/raw/*-ubyte, 60k + 10k

Same sizes, shapes and format (uint8 28x28 images, labels 0-9), so ``latentzoo fit --data
latentzoo.datamodules.FashionMNIST --data.data_dir DATA_DIR`` trains exactly as many steps at
the same cost; the losses mean nothing. Prints ``real`` and writes nothing when the real files
are found (``DATA_DIR`` or Debian's ``dataset-fashion-mnist``), else ``random``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from latentzoo.datamodules import FashionMNIST


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape))
        f.write(array.astype(np.uint8).tobytes())


def main(data_dir: str) -> None:
    data = FashionMNIST(data_dir=data_dir)
    if all(data.find(name) is not None for name in data.md5s):
        print("real")
        return
    data.raw_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60_000), ("t10k", 10_000)):
        write_idx(
            data.raw_dir / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051
        )
        write_idx(data.raw_dir / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), 2049)
    print("random")


if __name__ == "__main__":
    main(sys.argv[1])
