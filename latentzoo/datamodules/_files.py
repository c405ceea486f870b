"""File helpers of the datamodules: atomic download and extraction, clear missing-file errors.

Every write here goes to a temporary name in the destination's own folder and is moved into place
with one ``os.replace`` (atomic on one file system). A download cut off by a network error or by
Ctrl-C, or an extraction that fails half way, therefore leaves nothing behind that a later run could
mistake for a complete file: the next run sees the file missing and fetches it again.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

__all__ = [
    "CorruptFileError",
    "atomic_path",
    "download_from_mirrors",
    "download_url",
    "dpkg_files",
    "extract_archive",
    "md5sum",
    "read_at_most",
    "require_file",
]

_CHUNK = 1 << 20
_USER_AGENT = "latentzoo"  # some mirrors refuse urllib's default agent


class CorruptFileError(ValueError):
    """A data file exists but is not what its name says: truncated, damaged, or another file.

    Args:
        path: The file, also kept as :attr:`path` so that callers can act on it.
        problem: What is wrong, phrased to follow the path (``"is truncated"``).
        remedy: What to do; by default, delete the file and download it again.
    """

    def __init__(
        self, path: str | os.PathLike[str], problem: str, remedy: str | None = None
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy if remedy is not None else f"delete {self.path} and download it again"
        super().__init__(f"{self.path} {problem}; {self.remedy}")

    def __reduce__(self) -> tuple[type[CorruptFileError], tuple[Path, str, str]]:
        # Default exception pickling passes only the message; DDP workers send errors pickled.
        return type(self), (self.path, self.problem, self.remedy)


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def read_at_most(f: _Readable, n: int) -> bytes:
    """Read up to ``n`` bytes in 1 MiB chunks, so that memory follows the file, not ``n``.

    ``f.read(n)`` allocates ``n`` bytes up front on a buffered or compressed stream; a damaged
    header that claims terabytes would then fail with a bare MemoryError naming no file.
    """
    chunks = []
    while n > 0:
        chunk = f.read(min(n, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def require_file(path: str | os.PathLike[str], hint: str) -> Path:
    """Return ``path`` if it is a file, else raise naming it and what to do.

    Args:
        path: The file a loader needs.
        hint: What the user should do, e.g. ``"pass download=True or put the file there"``.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Missing file {path}: {hint}")
    return path


def md5sum(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; move it onto ``dest`` only if the block succeeds.

    On any exception, KeyboardInterrupt included, the temporary file is removed and the exception
    propagates, so ``dest`` is either absent, or its old version, or complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def download_url(url: str, dest: str | os.PathLike[str], md5: str | None = None) -> Path:
    """Stream ``url`` into ``dest`` with a progress bar, checking its MD5 before it lands.

    Raises:
        ValueError: The downloaded bytes do not have the expected MD5 (nothing is written).
        OSError: The server could not be reached or the transfer broke off (nothing is written).
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with urlopen(Request(url, headers={"User-Agent": _USER_AGENT}), timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.md5(usedforsecurity=False)
            with (
                open(tmp, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar,
            ):
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(
                f"Download of {url} has MD5 {digest.hexdigest()}, expected {md5}: the mirror "
                f"served a different or damaged file; retry later or fetch it by hand to {dest}"
            )
    return dest


def download_from_mirrors(
    filename: str, mirrors: Sequence[str], dest: str | os.PathLike[str], md5: str | None = None
) -> Path:
    """Try ``mirror + filename`` for each mirror in turn until one download succeeds.

    Raises:
        RuntimeError: Every mirror failed; the message lists each URL and its error.
    """
    errors = []
    for mirror in mirrors:
        url = mirror + filename
        try:
            return download_url(url, dest, md5)
        except (OSError, ValueError) as err:
            errors.append(f"  {url}: {err}")
    raise RuntimeError(
        f"Could not download {filename} from any mirror:\n" + "\n".join(errors) + "\n"
        f"Fetch it by hand and put it at {dest}"
    )


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a tar (any compression) or zip archive so that its contents end up at ``dest``.

    The archive is unpacked into a temporary folder beside ``dest``, then renamed into place. If the
    archive holds a single top-level folder named like ``dest`` (as ``cifar-10-batches-py/`` in the
    CIFAR tarball), that folder becomes ``dest``; otherwise the whole extraction does.

    Raises:
        FileExistsError: ``dest`` already exists (it is never overwritten or merged into).
        CorruptFileError: ``archive`` is neither a tar nor a zip file, or is damaged.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; delete it to extract {archive.name} again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        _extract_into(archive, tmp)
        entries = list(tmp.iterdir())
        single = len(entries) == 1 and entries[0].is_dir() and entries[0].name == dest.name
        os.replace(entries[0] if single else tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract_into(archive: Path, folder: Path) -> None:
    redo = f"delete {archive} and download it again"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(folder)  # zipfile drops ".." and absolute parts of member names
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                # The "data" filter refuses links and paths that escape the folder.
                tf.extractall(folder, filter="data")
                assert tf.fileobj is not None
                # Read the compressed stream to its end: tarfile stops at the archive's last
                # block, before the gzip/bz2/xz trailer whose checksum catches damaged data.
                while tf.fileobj.read(_CHUNK):
                    pass
        else:
            raise CorruptFileError(archive, "is neither a tar nor a zip archive", redo)
    # A damaged compressed stream surfaces from the decompressor, not always as a TarError.
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise CorruptFileError(archive, f"is damaged ({err})", redo) from err


def dpkg_files(package: str) -> list[Path]:
    """Files that the Debian package ``package`` installed, or ``[]`` if dpkg or it is absent."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return []
    try:
        result = subprocess.run(
            [dpkg, "-L", package], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return [Path(line) for line in result.stdout.splitlines() if line.strip()]
