"""Files of a data folder written whole: each decompressed or copied under a temporary name
beside its destination, checked, fsynced, then renamed into place (`_write_all`)."""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import pathlib
import shutil
import struct
import tempfile
import zlib

from ..files import publish
from .integrity import _IDX_MD5, _IDX_SIZES, _VERIFIED, DataIntegrityError, _summary


def _write_all(jobs) -> None:
    """Run `jobs`, each writing one file under a temporary name beside its destination and
    returning (temporary file, destination, whether its size and md5 were checked), or None
    when the destination is already right; then rename every temporary file into place. If a
    job fails, the temporary files go and nothing is written."""
    staged = []
    try:
        for job in jobs:
            if (done := job()) is not None:
                staged.append(done)
    except BaseException:
        for tmp, _, _ in staged:
            pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, path, checked in staged:
        publish(tmp, path)
        if checked:  # checked while written: not hashed again by this process
            st = path.stat()
            _VERIFIED[(str(path), st.st_size, st.st_mtime_ns)] = True


@contextlib.contextmanager
def _temporary_beside(path: pathlib.Path):
    """A binary file open for writing under a temporary name in `path`'s folder (made if
    missing); yields (file, its name), fsynced on leaving; removed if an error leaves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _stage_gunzip(gz: pathlib.Path, out: pathlib.Path):
    """Decompress `gz` beside `out` (a job of `_write_all`): None if `out` is already there
    with the decompressed size; DataIntegrityError naming `gz` if it cannot be decompressed
    or, for the IDX files whose md5s are known, decompresses to another file."""
    how = "replace it with a good copy and run again"
    try:  # no library reads gzip's trailer: its last 4 bytes are the decompressed size
        with open(gz, "rb") as f:
            f.seek(-4, os.SEEK_END)
            size = struct.unpack("<I", f.read(4))[0]
    except OSError as err:
        if err.errno != errno.EINVAL:  # EINVAL: shorter than 4 bytes
            raise
        raise DataIntegrityError(f"{gz} is damaged: {os.path.getsize(gz)} bytes, not a gzip "
                                 f"file; {how}") from None
    if out.is_file() and out.stat().st_size == size:
        return None
    expected_size = _IDX_SIZES.get(out.name)
    expected_md5 = _IDX_MD5.get(out.parent.parent.name, {}).get(out.name)
    digest, n = hashlib.md5(), 0
    with _temporary_beside(out) as (f, tmp), gzip.open(gz, "rb") as source:
        while True:
            try:
                chunk = source.read(1 << 20)
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # truncated or altered
                raise DataIntegrityError(f"{gz} is damaged: not a complete gzip file "
                                         f"({_summary(err)}); {how}") from None
            if not chunk:
                break
            f.write(chunk)
            digest.update(chunk)
            n += len(chunk)
    if (expected_size is not None and n != expected_size) or (
            expected_md5 is not None and digest.hexdigest() != expected_md5):
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise DataIntegrityError(f"{gz} is damaged: it decompresses to {n} bytes with md5 "
                                 f"{digest.hexdigest()}, expected {expected_size} bytes with "
                                 f"md5 {expected_md5} ({out.name}); {how}")
    return tmp, out, expected_md5 is not None


def _stage_copy(src: pathlib.Path, out: pathlib.Path):
    """Copy `src` beside `out` (a job of `_write_all`): None if `out` is already there with
    the same size (which also makes installing a folder onto itself harmless)."""
    if out.is_file() and out.stat().st_size == src.stat().st_size:
        return None
    with _temporary_beside(out) as (f, tmp), open(src, "rb") as source:
        shutil.copyfileobj(source, f)
    return tmp, out, False
