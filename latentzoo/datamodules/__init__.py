"""LightningDataModules for the data sets latentzoo trains on, by name in :data:`DATAMODULES`
(plugins through the entry-point group ``latentzoo.datamodules``)."""

from latentzoo.datamodules.base import InMemoryDataModule, TensorPairDataset
from latentzoo.datamodules.celeba import CelebA
from latentzoo.datamodules.cifar import CIFAR10
from latentzoo.datamodules.mnist import MNIST, FashionMNIST
from latentzoo.datamodules.synthetic import Synthetic
from latentzoo.registry import Registry, subclass_check

__all__ = [
    "CIFAR10",
    "DATAMODULES",
    "MNIST",
    "CelebA",
    "FashionMNIST",
    "InMemoryDataModule",
    "Synthetic",
    "TensorPairDataset",
]

DATAMODULES: Registry[type[InMemoryDataModule]] = Registry(
    "data set",
    "latentzoo.datamodules",
    subclass_check(lambda: InMemoryDataModule, "latentzoo datamodule (InMemoryDataModule)"),
)
for _cls in (MNIST, FashionMNIST, CIFAR10, CelebA, Synthetic):
    DATAMODULES.register(_cls)
