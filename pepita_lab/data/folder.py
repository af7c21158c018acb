"""The data folder: where it is, its datasets made ready (from archives there, a mirror, or
torchvision's download) and checked, safe from many processes (a lock per dataset)."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import tempfile

from .. import locks
from .integrity import (_DATASET_OF_FOLDER, _HOW_TO_FILL, _IDX_MD5, _IDX_SIZES,
                        _MIRROR_GZ_FOLDERS, _MIRROR_TREES, _TORCHVISION, DataIntegrityError,
                        DataNotFoundError, _summary, verify_file)
from .staging import _stage_copy, _stage_gunzip, _write_all


def _expected_files(name: str, root: pathlib.Path, cls) -> dict[pathlib.Path, tuple]:
    """The files dataset `name` reads, each with its (size or None, md5): MNIST-likes' IDX
    files, CIFAR's batches with torchvision's md5s."""
    folder = root / _TORCHVISION[name][1]
    if name in ("mnist", "fashion-mnist"):
        md5s = _IDX_MD5[_TORCHVISION[name][0]]
        return {folder / f: (size, md5s[f]) for f, size in _IDX_SIZES.items()}
    files = list(cls.train_list) + list(cls.test_list) + [[cls.meta["filename"],
                                                           cls.meta["md5"]]]
    return {folder / f: (None, md5) for f, md5 in files}


def _verify_dataset(name: str, root: pathlib.Path, cls) -> None:
    """Check the files a dataset reads, where they exist (missing ones are `_fill`'s to make):
    IDX sizes and md5s, CIFAR batches against torchvision's md5s."""
    for path, (size, md5) in _expected_files(name, root, cls).items():
        if path.is_file():
            verify_file(path, size, md5)


def _complete(name: str, root: pathlib.Path, cls) -> bool:
    return all(path.is_file() for path in _expected_files(name, root, cls))


def available_datasets(data_dir=None) -> list[str]:
    """The image datasets whose folder exists in the data folder (not checked further)."""
    root = resolve_data_dir(data_dir)
    return [name for name, (_, folder, _, _) in _TORCHVISION.items() if (root / folder).is_dir()]


def resolve_data_dir(data_dir=None) -> pathlib.Path:
    """The data folder: `data_dir` if given, else $PEPITA_LAB_DATA, else ./data (absolute path)."""
    chosen = data_dir if data_dir is not None else os.environ.get("PEPITA_LAB_DATA") or "data"
    return pathlib.Path(chosen).expanduser().absolute()


def _torchvision_class(name: str):
    import torchvision.datasets  # here, not at the top: a second of import the synthetic task skips

    return getattr(torchvision.datasets, _TORCHVISION[name][0])


def prepare_dataset(name, data_dir=None, *, download=True) -> pathlib.Path:
    """Make the files image dataset `name` reads ready in the data folder (`data_dir`, see
    `resolve_data_dir`), whole and checked; return the folder.

    Files already there are checked (sizes and md5s) and never replaced: a damaged one is a
    DataIntegrityError naming it. Missing files are made from the archives in the folder
    (MNIST's `raw/*.gz`, the CIFAR archive), else downloaded when `download` is true, else
    DataNotFoundError names the folder. Safe from many processes at once: the dataset's lock
    (`flock` on `<data folder>/.<name>.lock`) is held while files are made and checked, and
    every file is written under a temporary name and renamed into place once complete, so a
    process finds whole files or waits for them; a process that finds every file there checks
    them without waiting.
    """
    if name not in _TORCHVISION:
        raise ValueError(f"{name!r} is not an image dataset; allowed: {', '.join(_TORCHVISION)}")
    root, cls = resolve_data_dir(data_dir), _torchvision_class(name)
    if _complete(name, root, cls):  # files only ever appear whole: check them at once
        _verify_dataset(name, root, cls)
        return root
    if not download and not _archives_here(name, root, cls):  # looking creates nothing
        _verify_dataset(name, root, cls)
        raise _not_found(name, root, cls, "downloading is off")
    with dataset_lock(root, name):
        _verify_dataset(name, root, cls)  # damaged files: a clear error, never wrong data
        if not _complete(name, root, cls):  # another process may have filled it meanwhile
            _fill(name, root, cls, download)
            _verify_dataset(name, root, cls)
    return root


@contextlib.contextmanager
def dataset_lock(root: pathlib.Path, name: str):
    """Hold dataset `name`'s lock in data folder `root` (`root/.<name>.lock`, made with the
    folder if missing), waiting for another process that holds it. A folder where no lock file
    can be made (read-only) is used without one: no process writes there either."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        lock = locks.acquire(root / f".{name}.lock")
    except OSError as err:
        if not isinstance(err, PermissionError) and err.errno != errno.EROFS:
            raise
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            locks.release(lock)


def _archives_here(name: str, root: pathlib.Path, cls) -> bool:
    """Whether every missing file can be made from an archive in the data folder."""
    if name in ("mnist", "fashion-mnist"):
        return all(path.is_file() or path.with_name(path.name + ".gz").is_file()
                   for path in _expected_files(name, root, cls))
    return all(path.is_file() for path, _ in _torchvision_files(name, root, cls))


def _fill(name: str, root: pathlib.Path, cls, download: bool) -> None:
    """Make the missing files of a dataset (its lock held): MNIST-likes' from the `.gz`
    files there (decompressed, checked, then renamed into place), the rest by torchvision
    from its archives there or downloaded, in a temporary folder, then renamed into place."""
    _remove_leftovers(root, name)
    if name in ("mnist", "fashion-mnist"):
        jobs = [(gz, gz.with_suffix(""), md5) for gz, md5 in _torchvision_files(name, root, cls)
                if gz.is_file() and not gz.with_suffix("").is_file()]
        _write_all([(lambda gz=gz, out=out, md5=md5: _stage_gunzip_checked(gz, out, md5))
                    for gz, out, md5 in jobs])
        if _complete(name, root, cls):
            return
    else:
        _check_torchvision_files(name, root, cls)  # an archive there but damaged: never
        # downloaded over
    if not download and not _archives_here(name, root, cls):
        raise _not_found(name, root, cls, "downloading is off")
    _fetch(name, root, cls)


def _stage_gunzip_checked(gz: pathlib.Path, out: pathlib.Path, md5: str):
    """`_stage_gunzip`; an archive that cannot be read or gives the wrong file is named
    against torchvision's md5 when it is not the official file."""
    try:
        return _stage_gunzip(gz, out)
    except DataIntegrityError:
        _check_torchvision_files_of([(gz, md5)])
        raise


def _fetch(name: str, root: pathlib.Path, cls) -> None:
    """torchvision's download (and extraction) into a temporary folder in the data folder
    (archives already there and intact are linked in, so only missing ones are downloaded);
    then every file not yet in place is renamed into it."""
    from torchvision.datasets.utils import calculate_md5

    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.part-", dir=root))
    try:
        for path, md5 in _torchvision_files(name, root, cls):
            if path.is_file() and calculate_md5(path) == md5:  # torchvision will not touch it
                target = tmp / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
        try:
            cls(tmp, train=True, download=True)
        except Exception as err:  # offline: URLError (CIFAR), RuntimeError naming mirrors
            raise _not_found(name, root, cls, f"download failed: {_summary(err)}") from None
        for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
            dest = root / src.relative_to(tmp)
            if not dest.exists():
                with open(src, "rb") as f:
                    os.fsync(f.fileno())
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_leftovers(root: pathlib.Path, name: str) -> None:
    """Remove what a process killed while filling dataset `name` left (its lock held, so no
    process is writing them): temporary folders and half-written files."""
    for tmp in root.glob(f".{name}.part-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    folder = root / _TORCHVISION[name][1]
    if folder.is_dir():
        for tmp in folder.glob(".*.part"):
            tmp.unlink(missing_ok=True)


def _not_found(name: str, root: pathlib.Path, cls, reason: str) -> DataNotFoundError:
    folder = root / _TORCHVISION[name][1]
    missing = [p.name for p in _expected_files(name, root, cls) if not p.is_file()]
    what = f"{missing[0]}{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}"
    err = DataNotFoundError(
        f"{name} not found in {folder} (data folder {root}; missing {what}; {reason}). To fill "
        f"it, {_HOW_TO_FILL}.")
    err.__suppress_context__ = True  # the message says it all; torchvision's would bury it
    return err


def _open_torchvision(name, root, train):
    """The torchvision dataset object of files `prepare_dataset` made ready."""
    cls = _torchvision_class(name)
    try:
        return cls(root, train=train, download=False)
    except Exception as err:  # torchvision says RuntimeError; a damaged file can raise others
        folder = root / _TORCHVISION[name][1]
        raise DataNotFoundError(
            f"{name} cannot be read from {folder} (torchvision: {_summary(err)}). To fill it "
            f"again, {_HOW_TO_FILL}.") from None


def _torchvision_files(name: str, root: pathlib.Path, cls) -> list[tuple[pathlib.Path, str]]:
    """The files torchvision checks with its own md5s before it reads or downloads: MNIST's
    compressed `raw/*.gz`, the CIFAR archive."""
    if name in ("mnist", "fashion-mnist"):
        raw = root / _TORCHVISION[name][1]
        return [(raw / url.rsplit("/", 1)[-1], md5) for url, md5 in cls.resources]
    return [(root / cls.filename, cls.tgz_md5)]


def _check_torchvision_files(name: str, root: pathlib.Path, cls) -> None:
    """DataIntegrityError for a file that is there but fails torchvision's md5 check, which
    torchvision itself reports as "not found" (and then tries to download over it)."""
    _check_torchvision_files_of(_torchvision_files(name, root, cls))


def _check_torchvision_files_of(files) -> None:
    from torchvision.datasets.utils import calculate_md5

    for path, md5 in files:
        if path.is_file() and (digest := calculate_md5(path)) != md5:
            raise DataIntegrityError(
                f"{path} exists but fails torchvision's md5 check (md5 {digest}, expected "
                f"{md5}): it is damaged or not the official file; delete it and fill the "
                "folder again (`pepita-lab data --mirror PATH`, or let torchvision download it)")


def install_mirror(src, dst=None) -> list[pathlib.Path]:
    """Fill data folder `dst` (default: `resolve_data_dir()`) from a mirror in torchvision's layout.

    MNIST/FashionMNIST `raw/*.gz` files are written decompressed, since that is what torchvision
    checks for before it would download; CIFAR folders are copied. Files already there with the
    right size are kept. Returns every file written or found. Each dataset's lock is held
    meanwhile (as by `prepare_dataset`) and every file is renamed into place once complete; a
    `.gz` that cannot be decompressed, or decompresses to the wrong file, is a
    DataIntegrityError naming it, and then no file is written.
    """
    src, dst = pathlib.Path(src).expanduser(), resolve_data_dir(dst)
    gz_files = {folder: sorted((src / folder / "raw").glob("*.gz"))
                for folder in _MIRROR_GZ_FOLDERS}
    trees = [folder for folder in _MIRROR_TREES if (src / folder).is_dir()]
    folders = [folder for folder, files in gz_files.items() if files] + trees
    if not folders:
        wanted = ", ".join([f"{f}/raw/*.gz" for f in _MIRROR_GZ_FOLDERS] + list(_MIRROR_TREES))
        raise DataNotFoundError(f"no dataset files in mirror {src} (looked for {wanted})")
    jobs, installed = [], []
    for folder, files in gz_files.items():
        for gz in files:
            out = dst / folder / "raw" / gz.stem
            jobs.append(lambda gz=gz, out=out: _stage_gunzip(gz, out))
            installed.append(out)
    for folder in trees:
        for file in sorted(p for p in (src / folder).rglob("*") if p.is_file()):
            out = dst / folder / file.relative_to(src / folder)
            jobs.append(lambda file=file, out=out: _stage_copy(file, out))
            installed.append(out)
    with contextlib.ExitStack() as held:  # always in this order: no two processes deadlock
        for folder in folders:
            held.enter_context(dataset_lock(dst, _DATASET_OF_FOLDER[folder]))
        _write_all(jobs)
    return installed
