"""Shared fixtures: the real datasets from the mirror beside the repo (../shared/datasets)."""

from pathlib import Path

import pytest

from pepita_lab.data import install_mirror

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no dataset mirror at {MIRROR}")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data folder holding real MNIST and Fashion-MNIST, decompressed from the mirror."""
    if not MIRROR.is_dir():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    root = tmp_path_factory.mktemp("data")
    install_mirror(MIRROR, root)
    return root
