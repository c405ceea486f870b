"""LightningDataModules for the data sets latentzoo trains on."""

from latentzoo.datamodules.base import InMemoryDataModule, TensorPairDataset
from latentzoo.datamodules.celeba import CelebA
from latentzoo.datamodules.cifar import CIFAR10
from latentzoo.datamodules.mnist import MNIST, FashionMNIST
from latentzoo.datamodules.synthetic import Synthetic

__all__ = [
    "CIFAR10",
    "MNIST",
    "CelebA",
    "FashionMNIST",
    "InMemoryDataModule",
    "Synthetic",
    "TensorPairDataset",
]
