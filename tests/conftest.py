"Shared fixtures: the real data, peers and weights of ../shared, each skipped with a reason when absent."
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _folder(env, default, what):
    p = Path(os.environ.get(env) or default)
    if not p.is_dir():
        pytest.skip(f"{what} not found at {p} (set {env})")
    return p


@pytest.fixture(scope="session")
def data_root():
    "The data root (`FMD_RICE_DATA`, else ../shared/data)."
    return _folder("FMD_RICE_DATA", SHARED / "data", "data sets")


@pytest.fixture(scope="session")
def peers_root():
    "The peers folder (`FMD_RICE_PEERS`, else ../shared/peers)."
    return _folder("FMD_RICE_PEERS", SHARED / "peers", "peer models")


@pytest.fixture(scope="session")
def weights_root():
    "The ImageNet weights folder (`FMD_RICE_WEIGHTS`, else ../shared/weights/keras)."
    return _folder("FMD_RICE_WEIGHTS", SHARED / "weights" / "keras", "ImageNet weights")
