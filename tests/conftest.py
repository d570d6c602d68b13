import os
from pathlib import Path

# Test runs start training subprocesses and data-loader workers on a 2-core machine: OpenMP
# threads that spin while waiting make oversubscribed processes up to 10x slower. Set before
# torch is imported, so it holds for this process and every subprocess.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

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
