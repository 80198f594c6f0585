import numpy as np
import pytest
import torch

# Ethanol near its minimum (Angstrom), atom order C C O H H H H H H.
ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
ETHANOL_R = np.array(
    [
        [-0.0116, 1.0107, 0.0076],
        [0.0021, -0.0024, -0.0006],
        [1.3540, -0.3949, -0.0086],
        [1.0157, 1.3874, 0.0019],
        [-0.5257, 1.8707, -0.4246],
        [-0.5270, 0.6285, 0.8917],
        [-0.5187, -0.8703, -0.4262],
        [-0.5105, 0.3803, -0.9003],
        [1.8608, 0.3786, -0.0074],
    ]
)
WATER_Z = np.array([8, 1, 1])
WATER_R = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]])


@pytest.fixture
def ethanol_frames():
    """Five distorted ethanol geometries (Angstrom), seeded."""
    rng = np.random.default_rng(0)
    return ETHANOL_Z, ETHANOL_R[None] + 0.05 * rng.standard_normal((5, 9, 3))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one intra-op thread (and do not stall on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cached_entries(cache_dir) -> dict:
    """Finished label-cache entries {path: mtime_ns}. A kill mid-write can leave atomic_write's
    hidden temporary (.<key>.npz.<pid>.tmp.npz) behind; it is not an entry and is never read."""
    return {p: p.stat().st_mtime_ns for p in sorted(cache_dir.rglob("*.npz")) if not p.name.startswith(".")}
