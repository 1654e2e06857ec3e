"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR, as a function of embeddings only.

With one process it equals `simclr.modules.NT_Xent(batch_size, temperature, world_size=1)` for any
batch size. Under torch.distributed it uses every process's embeddings as negatives: the
embeddings are gathered with a backward that sums each rank's gradient contributions, so that
DDP's gradient averaging yields exactly the gradient of the loss over the global batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All rows of `x` from every rank (rank order), differentiable, and the offset of this rank's rows.

    Ranks may hold different numbers of rows: sizes are exchanged first and rows padded to the largest.
    """
    if not _distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    padded = F.pad(x, (0, 0, 0, max(counts) - x.shape[0]))
    parts = all_gather(padded)
    rows = torch.cat([p[:n] for p, n in zip(parts, counts)])
    return rows, sum(counts[:rank])


def nt_xent(z_i: torch.Tensor, z_j: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Mean NT-Xent over this process's 2N views; z_i[k] and z_j[k] are the two views of example k."""
    if z_i.shape != z_j.shape or z_i.dim() != 2:
        raise ValueError(f"expected two (N, D) tensors of equal shape, got {tuple(z_i.shape)} and {tuple(z_j.shape)}")
    n = z_i.shape[0]
    all_i, offset = gather_with_grad(z_i)
    all_j, _ = gather_with_grad(z_j)
    total = all_i.shape[0]
    keys = F.normalize(torch.cat([all_i, all_j]), dim=1)
    queries = F.normalize(torch.cat([z_i, z_j]), dim=1)
    logits = queries @ keys.T / temperature

    local = torch.arange(n, device=z_i.device) + offset
    rows = torch.arange(2 * n, device=z_i.device)
    self_index = torch.cat([local, local + total])
    positive = torch.cat([local + total, local])
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[rows, self_index] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, positive)


class NTXentLoss(nn.Module):
    """NT-Xent with a fixed temperature; see `nt_xent`."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        return nt_xent(z_i, z_j, self.temperature)
