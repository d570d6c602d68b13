import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long real-training checks (run with -m slow)")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def photo_paths(names=("astronaut.png", "coffee.png", "rocket.jpg")):
    """Real photos shipped with scikit-image."""
    import skimage

    return [os.path.join(skimage.data_dir, n) for n in names]
