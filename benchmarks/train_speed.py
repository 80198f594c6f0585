"""Training throughput (structures per second) of the project's models against a PyG reference.

One training step is what the pipeline's engine does per batch, minus its bookkeeping:
forward pass, forces F = -dE/dx with ``create_graph=True``, loss
(1 - rho) * MSE(F) + rho * MSE(E) (``pipeline.training.losses.supervised_loss``, rho = 0.001),
backward pass and one step of the engine's optimiser (fused AdamW, ``make_optimizer``). Batches
come from the project's dense batching
(``TensorData.batch``) of MD-like frames (seeded 0.05 A Gaussian displacements of the RDKit/MMFF
geometry; labels are random, which does not change the cost).

Models: ``egnn``, ``gemnet`` and ``mace`` (mace-torch's ``MACE`` in the project's registry) with
their default hyperparameters (``pipeline.models.build``: the papers' MD17 settings), or with
``--config-hparams`` those of ``config.yaml`` (``training.hparams``: the CPU-sized EGNN and MACE the
default workflow trains), and as reference torch-geometric's own ``SchNet`` (128 channels and filters, 6 interactions,
50 Gaussians, cutoff 5 A like the project's models). The installed torch-geometric has no
torch-cluster, so SchNet gets its neighbour list from a plain-torch radius graph through its
``interaction_graph`` argument; it is wrapped in the project's ``EnergyModel`` so that the loss,
forces and optimiser step are exactly those of the project's models.

Batch sizes are the paper's: 10 (accurate labels) and 16 (cheap labels); EGNN and SchNet also 32.
A fresh model takes from data what the training stages give it (``fit_data_statistics``: GemNet's
scale factors, MACE's average number of neighbours).
Each configuration runs ``--warmup`` untimed steps, then ``--repeats`` timed blocks of
``--steps`` steps; the table gives the median throughput over blocks and the half-range in %.

    python benchmarks/train_speed.py            # full table
    python benchmarks/train_speed.py --quick    # smoke run (ethanol, 1 thread, short blocks)
    python benchmarks/train_speed.py --models egnn gemnet mace --config-hparams --molecules ethanol \
        --batch-sizes 16 --no-reference         # the three models as the default config trains them
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common
import torch
import yaml
from torch import nn

from pipeline.models import MODELS, EnergyModel, build, fit_data_statistics
from pipeline.training.batching import TensorData
from pipeline.training.engine import make_optimizer
from pipeline.training.losses import supervised_loss

RHO = 0.001  # pipeline default (training.rho)
BATCH_SIZES = {"egnn": [10, 16, 32], "gemnet": [10, 16], "mace": [10, 16], "schnet": [10, 16, 32]}
REFERENCE = "schnet"
CUTOFF = 5.0  # Angstrom; the default cutoff of egnn, gemnet and mace
CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


class PlainRadiusGraph(nn.Module):
    """SchNet ``interaction_graph`` in plain torch: all pairs i != j of one structure closer than
    ``cutoff``. Returns (edge_index [2, n_edges], edge_weight [n_edges]); the weights (distances)
    are differentiable with respect to ``pos`` so that forces flow through them."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            d = torch.cdist(pos, pos)  # [n, n]
            keep = (batch[:, None] == batch[None, :]) & (d < self.cutoff)  # [n, n]
            keep.fill_diagonal_(False)
        edge_index = keep.nonzero().t()  # [2, n_edges]
        row, col = edge_index
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)


class SchNetEnergy(nn.Module):
    """torch_geometric.nn.models.SchNet as a backbone returning one energy per structure [n_struct]."""

    def __init__(self):
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.net = SchNet(
            hidden_channels=128,
            num_filters=128,
            num_interactions=6,
            num_gaussians=50,
            cutoff=CUTOFF,
            interaction_graph=PlainRadiusGraph(CUTOFF),
        )

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return self.net(z, pos, batch).squeeze(-1)


def config_hparams() -> dict:
    """training.hparams of config.yaml (model name -> hyperparameters)."""
    return yaml.safe_load(CONFIG.read_text())["training"]["hparams"]


def make_model(name: str, data: TensorData, seed: int, hparams: dict | None = None) -> EnergyModel:
    """A freshly initialised model on the data's device, with what it takes from data fitted as in
    training."""
    torch.manual_seed(seed)
    if name == REFERENCE:
        return EnergyModel(REFERENCE, {}, SchNetEnergy()).to(data.R.device)
    model = build(name, **(hparams or {})).to(data.R.device)
    fit_data_statistics(model, [data.batch(idx) for idx in data.batches(16)[:2]])
    return model


def time_training(
    model: EnergyModel, data: TensorData, batch_size: int, warmup: int, steps: int, repeats: int, seed: int
) -> list[float]:
    """Structures per second of each of `repeats` timed blocks of `steps` training steps."""
    opt = make_optimizer(model, lr=1e-4)
    batches = [idx for idx in data.batches(batch_size, torch.Generator().manual_seed(seed)) if len(idx) == batch_size]
    model.train()

    def step(i: int) -> None:
        loss, _ = supervised_loss(model, data, batches[i % len(batches)], RHO)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:  # CUDA runs asynchronously: a block ends when its kernels have finished
        if data.R.is_cuda:
            torch.cuda.synchronize(data.R.device)

    for i in range(warmup):
        step(i)
    rates = []
    for r in range(repeats):
        sync()
        t0 = time.perf_counter()
        for s in range(steps):
            step(warmup + r * steps + s)
        sync()
        rates.append(steps * batch_size / (time.perf_counter() - t0))
    return rates


def summary(rates: list[float]) -> str:
    med = common.median(rates)
    spread = 50.0 * (max(rates) - min(rates)) / med
    return f"{med:.1f} (±{spread:.0f}%)"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument(
        "--config-hparams",
        action="store_true",
        help="hyperparameters of config.yaml (training.hparams) instead of the models' defaults",
    )
    p.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch intra-op threads")
    p.add_argument(
        "--batch-sizes",
        nargs="+",
        type=int,
        default=None,
        help="override the paper's batch sizes (10, 16; EGNN and SchNet also 32)",
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration")
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per configuration (median reported)")
    p.add_argument("--no-reference", action="store_true", help="skip the torch-geometric SchNet reference")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (threads then set the host side)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: ethanol, 1 thread, batch 10, warmup 1, 3 blocks of 2 steps"
    )
    a = p.parse_args(argv)
    if a.quick:
        a.molecules, a.threads, a.batch_sizes = ["ethanol"], [1], [10]
        a.warmup, a.steps, a.repeats = 1, 2, 3

    models = list(a.models) + ([] if a.no_reference else [REFERENCE])
    hparams = {m: (config_hparams().get(m) or {}) if a.config_hparams else {} for m in a.models}
    sizes = {m: a.batch_sizes or BATCH_SIZES[m] for m in models}
    all_sizes = sorted({b for m in models for b in sizes[m]})
    import torch_geometric

    print("# Training throughput (structures/s)\n")
    common.print_machine(
        {
            "torch": torch.__version__,
            "torch-geometric": torch_geometric.__version__,
            "torch threads (intra-op) measured": ", ".join(map(str, a.threads)),
            "dtype": "float32",
            "device": torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else "cpu",
            "hyperparameters": "config.yaml training.hparams" if a.config_hparams else "the models' defaults (papers)",
            **{f"hparams {m}": str(hparams[m]) for m in a.models if hparams[m]},
        }
    )
    print(
        f"Warm-up {a.warmup} steps, then {a.repeats} blocks of {a.steps} steps; median structures/s "
        f"over blocks (± half-range). Step: forward, forces (create_graph), loss "
        f"(1-rho)*MSE(F)+rho*MSE(E) with rho={RHO}, backward, fused AdamW step.\n"
    )

    rows = []
    for molecule in a.molecules:
        n_frames = 4 * max(all_sizes)
        data = common.make_data(molecule, n_frames, a.seed, a.device)
        for threads in a.threads:
            torch.set_num_threads(threads)
            for bs in all_sizes:
                cells = []
                for m in models:
                    if bs not in sizes[m]:
                        cells.append("—")
                        continue
                    model = make_model(m, data, a.seed, hparams.get(m))
                    rates = time_training(model, data, bs, a.warmup, a.steps, a.repeats, a.seed)
                    cells.append(summary(rates))
                rows.append([f"{molecule} ({data.n_atoms})", bs, threads, *cells])
    names = {"egnn": "EGNN", "gemnet": "GemNet-T", "mace": "MACE", REFERENCE: "SchNet (PyG reference)"}
    print(common.markdown_table(["molecule (atoms)", "batch", "threads", *[names[m] for m in models]], rows))


if __name__ == "__main__":
    main()
