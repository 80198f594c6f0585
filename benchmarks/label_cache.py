"""Does one file per frame scale? Time LabelCache writes and reads for pools of N frames.

    python benchmarks/label_cache.py 1000 10000

Prints a table: frames, write and read ms per frame, disk use. Compare with the cost of the
cheapest computed label (GFN2-xTB, a few ms per frame) to see the store's overhead.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time

import numpy as np

from pipeline.labelling.cache import LabelCache


def measure(n: int) -> tuple[float, float, str]:
    rng = np.random.default_rng(0)
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    R = rng.standard_normal((n, len(z), 3))  # [n, n_atoms, 3]
    with tempfile.TemporaryDirectory() as d:
        cache = LabelCache(d, "benchmark")
        t = time.perf_counter()
        for i in range(n):
            cache.put(
                z, R[i], energy=1.0, forces=np.zeros((len(z), 3)), converged=True, reason="", cpu_s=0.0, wall_s=0.0
            )
        write = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(n):
            cache.get(z, R[i])
        read = time.perf_counter() - t
        disk = subprocess.run(["du", "-sh", d], capture_output=True, text=True).stdout.split()[0]
    return 1e3 * write / n, 1e3 * read / n, disk


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    a = p.parse_args()
    print("| frames | write ms/frame | read ms/frame | disk |\n|---|---|---|---|")
    for n in a.sizes:
        w, r, disk = measure(n)
        print(f"| {n} | {w:.2f} | {r:.2f} | {disk} |")


if __name__ == "__main__":
    main()
