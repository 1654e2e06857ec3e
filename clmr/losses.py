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


class _AllGatherSumGrad(torch.autograd.Function):
    """Every rank's equal-shaped `x`, concatenated in rank order. The backward sums every rank's gradient
    for this rank's rows, as Lightning's `all_gather(..., sync_grads=True)` does; it uses only public
    collectives that every backend (gloo, NCCL) has, where `torch.distributed.nn.functional.all_gather`
    is deprecated."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)  # sum over ranks of d(loss_r)/d(gathered rows)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All rows of `x` from every rank (rank order), differentiable, and the offset of this rank's rows.

    Ranks may hold different numbers of rows: sizes are exchanged first and rows padded to the largest.
    """
    if not _distributed():
        return x, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    gathered = _AllGatherSumGrad.apply(F.pad(x, (0, 0, 0, longest - x.shape[0])))
    rows = torch.cat([gathered[r * longest : r * longest + n] for r, n in enumerate(counts)])
    return rows, sum(counts[:rank])


def nt_xent(z_i: torch.Tensor, z_j: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Mean NT-Xent over this process's 2N views; z_i[k] and z_j[k] are the two views of example k.

    Under torch.distributed every process's views are negatives, and with equal N on every rank the
    mean over ranks (whose gradient DDP's averaging yields) is NT-Xent of the global batch.
    """
    if z_i.shape != z_j.shape or z_i.dim() != 2:
        raise ValueError(f"expected two (N, D) tensors of equal shape, got {tuple(z_i.shape)} and {tuple(z_j.shape)}")
    n, dim = z_i.shape
    pairs, offset = gather_with_grad(torch.cat([z_i, z_j], dim=1))  # one collective for both views
    all_i, all_j = pairs[:, :dim], pairs[:, dim:]
    total = pairs.shape[0]
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
        if not temperature > 0:  # 0 gives NaN losses, a negative one makes the positives the least similar
            raise ValueError(f"NT-Xent temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        return nt_xent(z_i, z_j, self.temperature)
