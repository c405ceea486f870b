"""CelebA on a folder of tiny aligned-size JPEGs and a partition file, as the official release."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg, write_file

from latentzoo.datamodules import celeba
from latentzoo.datamodules._files import CorruptFileError
from latentzoo.datamodules.celeba import CelebA

PARTITIONS = [0, 0, 0, 1, 2, 0, 2]  # train pool: images 0, 1, 2, 3, 5; test: 4, 6
BORDER = (0, 0, 0)

# torchvision 0.29 deprecates its JPEG codecs in favour of TorchCodec, warning on every call.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


def colour(i: int) -> tuple[int, int, int]:
    return (40 + 30 * i, 220 - 25 * i, 120)


def write_celeba(data_dir: Path) -> Path:
    """Image ``i`` is 218x178 (H x W) black with its central 140x140 (rows 39-178, columns 19-158)
    painted ``colour(i)``: a correct center crop sees only that colour, a shifted one sees black."""
    root = data_dir / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i, part in enumerate(PARTITIONS):
        image = torch.tensor(BORDER, dtype=torch.uint8).view(3, 1, 1).repeat(1, 218, 178)
        image[:, 39:179, 19:159] = torch.tensor(colour(i), dtype=torch.uint8).view(3, 1, 1)
        name = f"{i + 1:06d}.jpg"
        write_file(str(root / "img_align_celeba" / name), encode_jpeg(image, quality=95))
        lines.append(f"{name} {part}\n")
    (root / "list_eval_partition.txt").write_text("".join(lines))
    return root


def test_center_crop_resize_and_partitions(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    dm = CelebA(data_dir=str(tmp_path), image_size=16, val_size=2)
    assert dm.data_shape == (3, 16, 16)
    for train, ids in ((True, [0, 1, 2, 3, 5]), (False, [4, 6])):
        x, y = dm.load_split(train)
        assert x.dtype == torch.uint8 and x.shape == (len(ids), 3, 16, 16)
        assert y.dtype == torch.int64 and y.tolist() == [0] * len(ids)
        for image, i in zip(x, ids, strict=True):
            expected = torch.tensor(colour(i), dtype=torch.float32).view(3, 1, 1)
            error = (image.float() - expected).abs()  # (3, 16, 16)
            assert error.max() <= 20, f"image {i}: border pixels in the crop (error {error.max()})"


def test_cache_is_written_and_used(tmp_path: Path) -> None:
    root = write_celeba(tmp_path)
    x, _ = CelebA(data_dir=str(tmp_path), image_size=8).load_split(train=False)
    cache = root / "cache_8_test.pt"
    assert cache.is_file() and not (root / "cache_8_train.pt").exists()
    assert [p.name for p in root.iterdir() if p.name.endswith(".part")] == []
    for jpeg in (root / "img_align_celeba").iterdir():
        jpeg.unlink()  # the cache alone must now suffice
    cached, _ = CelebA(data_dir=str(tmp_path), image_size=8).load_split(train=False)
    assert torch.equal(cached, x)
    first, _ = CelebA(data_dir=str(tmp_path), image_size=8, max_samples=1).load_split(train=False)
    assert torch.equal(first, x[:1])


def test_max_samples_reads_a_prefix_and_caches_nothing(tmp_path: Path) -> None:
    root = write_celeba(tmp_path)
    x, _ = CelebA(data_dir=str(tmp_path), image_size=8, max_samples=3).load_split(train=True)
    full, _ = CelebA(data_dir=str(tmp_path), image_size=8).load_split(train=True)
    assert torch.equal(x, full[:3])
    assert sorted(p.name for p in root.glob("cache_*")) == ["cache_8_train.pt"]


def test_loader_batches_and_split(tmp_path: Path, check_loaders) -> None:
    write_celeba(tmp_path)
    dm = CelebA(data_dir=str(tmp_path), image_size=8, val_size=2, batch_size=3)
    check_loaders(dm, 3)
    assert dm.train_set is not None and dm.val_set is not None
    assert (len(dm.train_set), len(dm.val_set)) == (3, 2)


def test_missing_files_say_what_to_put_where(tmp_path: Path) -> None:
    root = write_celeba(tmp_path)
    (root / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of the 2 images .* e\.g\. .*000005\.jpg"):
        CelebA(data_dir=str(tmp_path)).load_split(train=False)
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        CelebA(data_dir=str(tmp_path)).load_split(train=True)
    message = str(info.value)
    assert f"Missing file {root / 'list_eval_partition.txt'}" in message
    assert "img_align_celeba.zip" in message and str(root / "img_align_celeba") in message


def test_malformed_partition_line_is_named(tmp_path: Path) -> None:
    root = write_celeba(tmp_path)
    with open(root / "list_eval_partition.txt", "a") as f:
        f.write("000008.jpg train\n")
    with pytest.raises(ValueError, match=r"list_eval_partition\.txt line 8"):
        CelebA(data_dir=str(tmp_path)).load_split(train=True)


def test_damaged_jpegs_are_refused_by_name(tmp_path: Path, damaged_copies, load_or_refuse) -> None:
    """A damaged image is refused naming it; a flipped bit in the entropy-coded data may decode to
    a changed picture (JPEG has no checksum), which is loaded at the right size."""
    root = write_celeba(tmp_path)
    path = root / "img_align_celeba" / "000005.jpg"  # in the test partition
    dm = CelebA(data_dir=str(tmp_path), image_size=8, max_samples=10)  # max_samples: no cache
    outcomes: Counter[tuple[str, str]] = Counter()
    for kind, damaged in damaged_copies(path.read_bytes(), 200, seed=0, header=200):
        path.write_bytes(damaged)
        result = load_or_refuse(path, lambda: dm.load_split(train=False))
        if isinstance(result, CorruptFileError):
            outcomes[kind, "refused"] += 1
        else:
            assert result[0].shape == (2, 3, 8, 8)
            outcomes[kind, "loaded"] += 1
    assert outcomes["random bytes", "refused"] == 50
    assert outcomes["truncated", "refused"] == 50
    assert not (root / "cache_8_test.pt").exists()


def test_jpeg_header_claiming_a_huge_image_is_not_decoded(tmp_path: Path, monkeypatch) -> None:
    root = write_celeba(tmp_path)
    path = root / "img_align_celeba" / "000005.jpg"
    data = path.read_bytes()
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    path.write_bytes(data[: sof + 5] + struct.pack(">HH", 65535, 65535) + data[sof + 9 :])
    monkeypatch.setattr(celeba, "decode_jpeg", None)  # must not be reached
    with pytest.raises(CorruptFileError, match=r"000005\.jpg has size 65535x65535"):
        CelebA(data_dir=str(tmp_path)).load_split(train=False)


def test_damaged_partition_file_is_refused_by_name(
    tmp_path: Path, damaged_copies, load_or_refuse
) -> None:
    root = write_celeba(tmp_path)
    path = root / "list_eval_partition.txt"
    outcomes: Counter[str] = Counter()
    for _kind, damaged in damaged_copies(path.read_bytes(), 200, seed=1, header=20):
        path.write_bytes(damaged)
        dm = CelebA(data_dir=str(tmp_path), image_size=8, max_samples=10)
        try:
            result = load_or_refuse(path, lambda: dm.load_split(train=True))  # noqa: B023
        except FileNotFoundError as err:  # a damaged name: the image it names is missing
            assert f"listed in {path}" in str(err)
            outcomes["image missing"] += 1
            continue
        if isinstance(result, CorruptFileError):
            outcomes["refused"] += 1
        else:  # a cut at a line's end, or a flipped partition digit: fewer or other images
            assert result[0].shape[1:] == (3, 8, 8) and len(result[0]) <= len(PARTITIONS)
            outcomes["loaded"] += 1
    assert outcomes["refused"] >= 100 and outcomes["image missing"] > 0


def test_damaged_cache_is_refused_by_name(tmp_path: Path, damaged_copies, load_or_refuse) -> None:
    root = write_celeba(tmp_path)
    x, _ = CelebA(data_dir=str(tmp_path), image_size=8).load_split(train=False)
    cache = root / "cache_8_test.pt"
    outcomes: Counter[str] = Counter()
    for _kind, damaged in damaged_copies(cache.read_bytes(), 100, seed=2, header=64):
        cache.write_bytes(damaged)
        result = load_or_refuse(
            cache, lambda: CelebA(data_dir=str(tmp_path), image_size=8).load_split(train=False)
        )
        if isinstance(result, CorruptFileError):
            assert "delete it to rebuild the cache" in str(result)
            outcomes["refused"] += 1
        else:  # torch.load checks no CRC: a flipped pixel bit loads, and changes one pixel
            assert result[0].shape == x.shape and (result[0] != x).sum() <= 1
            outcomes["loaded"] += 1
    assert outcomes["refused"] >= 50


def test_unreadable_cache_is_named(tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    root.mkdir()
    (root / "cache_64_train.pt").write_bytes(b"not a tensor")
    with pytest.raises(ValueError, match=r"cache_64_train\.pt is unreadable.*delete it"):
        CelebA(data_dir=str(tmp_path)).load_split(train=True)


def test_failed_download_explains_manual_steps(tmp_path: Path, monkeypatch) -> None:
    def quota_exceeded(root: Path) -> None:
        (root / "celeba").mkdir()
        (root / "celeba" / "img_align_celeba.zip").write_bytes(b"partial")
        raise RuntimeError("Too many users have viewed or downloaded this file recently")

    monkeypatch.setattr(celeba, "_download_with_torchvision", quota_exceeded)
    dm = CelebA(data_dir=str(tmp_path), download=True)
    with pytest.raises(RuntimeError, match=r"(?s)Too many users.*img_align_celeba\.zip"):
        dm.prepare_data()
    assert list((tmp_path / "celeba").iterdir()) == []  # the partial download is gone


def test_successful_download_is_moved_into_place(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(celeba, "_download_with_torchvision", write_celeba)
    dm = CelebA(data_dir=str(tmp_path), download=True, image_size=8)
    dm.prepare_data()
    names = sorted(p.name for p in (tmp_path / "celeba").iterdir())
    assert names == ["img_align_celeba", "list_eval_partition.txt"]
    assert len(dm.load_split(train=True)[0]) == 5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"image_size must be in \[1, 140\]"):
        CelebA(image_size=256)
    with pytest.raises(ValueError, match="max_samples"):
        CelebA(max_samples=0)
