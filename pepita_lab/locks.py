"""Locks shared by processes: an exclusive `flock` on a lock file (through filelock), held
until released or until its process ends, however it ends (the kernel drops it with the
process). A run folder's lock (`store.lock_folder`) and each dataset's lock in a data folder
(`data.prepare_dataset`, `data.install_mirror`) are these."""

from __future__ import annotations

from pathlib import Path

import filelock

# Locks held: filelock releases one whose object is garbage-collected, and callers may drop it.
_HELD: set[filelock.BaseFileLock] = set()


def acquire(file: Path, timeout: float = -1) -> filelock.BaseFileLock:
    """Hold an exclusive lock on `file` (made, mode 0644, if missing), waiting up to `timeout`
    seconds for another process to release it (-1: as long as it takes; 0: not at all);
    filelock.Timeout when it is still held then."""
    # flock, never the soft fallback: a marker file would outlive a killed process
    lock = filelock.FileLock(file, timeout=timeout, mode=0o644, thread_local=False,
                             fallback_to_soft=False)
    lock.acquire()
    _HELD.add(lock)
    return lock


def release(lock: filelock.BaseFileLock) -> None:
    """Release a lock of `acquire`."""
    lock.release()
    _HELD.discard(lock)
