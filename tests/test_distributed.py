"""Distributed pre-training: NT-Xent over 2 processes equals one process on the whole batch, SyncBN, scale-out.

The equivalence tests start 2 CPU processes (gloo on 127.0.0.1), give each rank a different slice of
one global batch, wrap the real `ContrastiveLearning` module (a small encoder without BatchNorm, the
SimCLR projector, NT-Xent) in DistributedDataParallel, and compare the rank-averaged loss and DDP's
averaged gradients with a single process on the whole batch. Negative controls (no gather, gather
without gradients, a backward that keeps only the local gradient, positives not offset by rank) show
that the comparison can fail.
"""

from __future__ import annotations

import os
import socket
from argparse import Namespace
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import clmr.losses
from clmr.config import load_config
from clmr.modules import ContrastiveLearning
from clmr.modules.optimizers import LARS_BASE_BATCH, LARS_BASE_LR, build_optimizer, effective_batch_size
from clmr.stages import contrastive_module
from clmr.trainer import build_trainer, hardware, use_sync_batchnorm

WORLD = 2
RTOL = 1e-5
TEMPERATURE = 0.5


class TinyEncoder(nn.Module):
    """Conv1d + ReLU + pool + fc: a raw-waveform encoder without BatchNorm (SyncBN needs GPUs)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 8, kernel_size=9, stride=3)
        self.pool = nn.AdaptiveMaxPool1d(4)
        self.fc = nn.Linear(32, 10)  # replaced by an Identity in SimCLR; its in_features size the projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(F.relu(self.conv(x))).flatten(1))


def _module(encoder: str) -> ContrastiveLearning:
    """The same float64 ContrastiveLearning module in every process (seeded)."""
    torch.manual_seed(0)
    cfg = load_config([])
    cfg.projection_dim, cfg.temperature = 16, TEMPERATURE
    if encoder == "tiny":
        return contrastive_module(cfg, TinyEncoder()).double()
    from clmr.models import SampleCNN

    return contrastive_module(cfg, SampleCNN(out_dim=10)).double()


def _global_batch(n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(n, 2, 1, length, generator=generator, dtype=torch.float64)
    return x[:, 0], x[:, 1]


def _local_only(x: torch.Tensor):
    return x, 0


def _gather_without_grad(x: torch.Tensor):
    rows, offset = GATHER(x.detach())
    return rows, offset


def _gather_without_offset(x: torch.Tensor):
    return GATHER(x)[0], 0


class _GatherLocalGrad(torch.autograd.Function):
    """The bug of the SimCLR package until 2023: backward keeps this rank's own gradient, not the sum."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n : (dist.get_rank() + 1) * n]


def _gather_with_unsummed_grad(x: torch.Tensor):
    return _GatherLocalGrad.apply(x), dist.get_rank() * x.shape[0]


GATHER = clmr.losses.gather_with_grad
BUGS = {
    "local_only": _local_only,
    "gather_without_grad": _gather_without_grad,
    "gather_without_offset": _gather_without_offset,
    "gather_with_unsummed_grad": _gather_with_unsummed_grad,
}

# name: (per-rank batch sizes, bug patched into nt_xent or None)
CPU_SCENARIOS = {
    "even": ((4, 4), None),
    "uneven": ((3, 5), None),
    "local_only": ((4, 4), "local_only"),
    "gather_without_grad": ((4, 4), "gather_without_grad"),
    "gather_without_offset": ((4, 4), "gather_without_offset"),
    "gather_with_unsummed_grad": ((4, 4), "gather_with_unsummed_grad"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank: int, port: int, out_dir: str, scenarios: dict, encoder: str, length: int, backend: str, sync_bn: bool
) -> None:
    """One rank: for each scenario, DDP forward/backward on this rank's slice; saves loss and gradients."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    device = torch.device(f"cuda:{rank}" if backend == "nccl" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=WORLD)
    try:
        for name, (sizes, bug) in scenarios.items():
            module = _module(encoder)
            if sync_bn:
                module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
            module.to(device)
            ddp = DistributedDataParallel(module, device_ids=[rank] if device.type == "cuda" else None)
            x_i, x_j = _global_batch(sum(sizes), length)
            mine = slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))
            with mock.patch.object(clmr.losses, "gather_with_grad", BUGS[bug]) if bug else nullcontext():
                loss = ddp(x_i[mine].to(device), x_j[mine].to(device))
                loss.backward()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            torch.save(
                {
                    "loss": loss.detach().cpu(),
                    "mean_loss": (mean / WORLD).cpu(),
                    "grads": {n: p.grad.cpu() for n, p in module.named_parameters()},
                },
                Path(out_dir) / f"{name}-{rank}.pt",
            )
    finally:
        dist.destroy_process_group()


def _run_ranks(
    tmp: Path, scenarios: dict, encoder: str = "tiny", length: int = 243, backend: str = "gloo", sync_bn: bool = False
) -> dict:
    mp.spawn(_worker, args=(_free_port(), str(tmp), scenarios, encoder, length, backend, sync_bn), nprocs=WORLD)
    return {name: [torch.load(tmp / f"{name}-{r}.pt") for r in range(WORLD)] for name in scenarios}


def _row_losses(z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
    """Per-view NT-Xent over one whole batch, written out independently of clmr.losses: (2N,)."""
    z = F.normalize(torch.cat([z_i, z_j]), dim=1)
    sim = (z @ z.T / TEMPERATURE).fill_diagonal_(float("-inf"))
    n = z_i.shape[0]
    positive = torch.cat([torch.arange(n) + n, torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positive, reduction="none")


def _single_process(
    sizes: tuple[int, ...], encoder: str = "tiny", length: int = 243, device: str = "cpu"
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """What the ranks should see: each rank's loss (mean over its own views, all views as negatives),
    the mean of those (DDP averages gradients over ranks) and its gradients, computed on the whole batch."""
    module = _module(encoder).to(device)
    x_i, x_j = _global_batch(sum(sizes), length)
    _, _, z_i, z_j = module.model(x_i.to(device), x_j.to(device))
    rows = _row_losses(z_i, z_j)
    total, starts = sum(sizes), [sum(sizes[:r]) for r in range(len(sizes))]
    per_rank = torch.stack(
        [torch.cat([rows[s : s + n], rows[total + s : total + s + n]]).mean() for s, n in zip(starts, sizes)]
    )
    per_rank.mean().backward()
    grads = {n: p.grad.cpu() for n, p in module.named_parameters()}
    return per_rank.detach().cpu(), grads, per_rank.mean().detach().cpu()


def _assert_matches(ranks: list[dict], per_rank: torch.Tensor, grads: dict, mean: torch.Tensor) -> None:
    for r, result in enumerate(ranks):
        torch.testing.assert_close(result["loss"], per_rank[r], rtol=RTOL, atol=0)
        torch.testing.assert_close(result["mean_loss"], mean, rtol=RTOL, atol=0)
        assert result["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(result["grads"][name], grad, rtol=RTOL, atol=1e-12, msg=name)


@pytest.fixture(scope="module")
def cpu_ranks(tmp_path_factory) -> dict:
    """Every CPU scenario, run once by one pair of gloo processes."""
    return _run_ranks(tmp_path_factory.mktemp("ranks"), CPU_SCENARIOS)


def test_two_ranks_equal_one_process_on_the_whole_batch(cpu_ranks):
    per_rank, grads, mean = _single_process((4, 4))
    # with equal halves the mean over ranks is NT-Xent of the global batch, as clmr.losses computes it
    x_i, x_j = _global_batch(8, 243)
    torch.testing.assert_close(mean, _module("tiny")(x_i, x_j).detach(), rtol=1e-12, atol=0)
    assert not torch.allclose(per_rank[0], per_rank[1], rtol=1e-3)  # the ranks really saw different data
    _assert_matches(cpu_ranks["even"], per_rank, grads, mean)


def test_uneven_rank_batches_use_every_view_as_a_negative(cpu_ranks):
    _assert_matches(cpu_ranks["uneven"], *_single_process((3, 5)))


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_wrong_gather_does_not_match(cpu_ranks, bug):
    per_rank, grads, mean = _single_process((4, 4))
    with pytest.raises(AssertionError):
        _assert_matches(cpu_ranks[bug], per_rank, grads, mean)


@pytest.mark.skipif(torch.cuda.device_count() < WORLD, reason="needs 2 GPUs (NCCL, SampleCNN with SyncBatchNorm)")
def test_two_gpus_with_sync_batchnorm_equal_one_gpu_on_the_whole_batch(tmp_path):
    ranks = _run_ranks(
        tmp_path, {"even": ((4, 4), None)}, encoder="samplecnn", length=59049, backend="nccl", sync_bn=True
    )
    _assert_matches(ranks["even"], *_single_process((4, 4), "samplecnn", 59049, device="cuda:0"))


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--accelerator", "gpu", "--devices", "2", "--strategy", "ddp"], True),
        (["--gpus", "4"], True),  # the original CLMR flag
        (["--accelerator", "gpu", "--devices", "0,1"], True),
        (["--accelerator", "gpu", "--devices", "1", "--num_nodes", "2"], True),
        (["--accelerator", "gpu", "--devices", "2", "--sync_batchnorm", "0"], False),
        (["--accelerator", "gpu", "--devices", "1"], False),  # one process: plain BatchNorm
        (["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"], False),  # SyncBatchNorm needs GPUs
    ],
)
def test_sync_batchnorm_on_several_gpus_unless_switched_off(flags, expected, visible_gpus):
    visible_gpus(4)  # the config refuses GPUs this machine does not have
    cfg = load_config(flags)
    assert use_sync_batchnorm(cfg, hardware(cfg)) is expected


def test_trainer_converts_batchnorm_only_when_sync_batchnorm_is_decided(tmp_path, monkeypatch):
    from pytorch_lightning.plugins import TorchSyncBatchNorm

    cfg = load_config(["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--log_dir", str(tmp_path)])
    trainer = build_trainer(cfg, "pretrain")
    assert trainer.world_size == 2 and trainer.strategy._layer_sync is None
    monkeypatch.setattr("clmr.trainer.use_sync_batchnorm", lambda cfg, hw: True)
    assert isinstance(build_trainer(cfg, "pretrain").strategy._layer_sync, TorchSyncBatchNorm)


class _FakeTrainer:
    world_size = 4  # e.g. 2 devices x 2 nodes


def test_lars_learning_rate_scales_with_the_effective_batch():
    hparams = Namespace(optimizer="LARS", batch_size=48, weight_decay=1e-6, max_epochs=10)
    assert effective_batch_size(48, _FakeTrainer()) == 192 and effective_batch_size(48, None) == 48
    optimizer = build_optimizer([nn.Parameter(torch.zeros(3))], hparams, _FakeTrainer())["optimizer"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LARS_BASE_LR * 48 * 4 / LARS_BASE_BATCH)  # 0.225


def test_each_rank_draws_its_own_crops_and_augmentations():
    cfg = load_config(["--seed", "7"])
    draws = {}
    for rank in (0, 1):
        module = contrastive_module(cfg, TinyEncoder())
        module._trainer = Namespace(world_size=2, global_rank=rank)
        torch.manual_seed(cfg.seed)  # what seed_everything did in every process
        module.on_fit_start()
        draws[rank] = torch.rand(4)
    assert not torch.equal(draws[0], draws[1])
    torch.manual_seed(cfg.seed)
    assert torch.equal(draws[0], torch.rand(4))  # rank 0 keeps the single-process stream


MAIN = Path(__file__).resolve().parent.parent / "main.py"


def test_ddp_pretraining_on_two_cpu_processes_writes_one_checkpoint_that_linear_evaluation_loads(tmp_path):
    """main.py under Lightning DDP (2 CPU processes, gloo); rank 0 alone writes last.ckpt and best.ckpt."""
    import subprocess
    import sys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from clmr.checkpoints import load_encoder
    from clmr.models import SampleCNN

    flags = [
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--max_epochs",
        "1",
        "--limit_train_batches",
        "1",
        "--limit_val_batches",
        "1",
        "--batch_size",
        "2",
        "--synthetic_tracks",
        "24",
        "--synthetic_duration",
        "3",
        "--dataset_dir",
        str(tmp_path / "data"),
        "--log_dir",
        str(tmp_path / "runs"),
    ]
    done = subprocess.run(
        [sys.executable, str(MAIN), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "effective batch size: 4 = 2 per device x 2 device(s) x 1 node(s)" in done.stdout

    run = tmp_path / "runs" / "pretrain_synthetic"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ckpt")) == [
        Path("runs/pretrain_synthetic/checkpoints/best.ckpt"),
        Path("runs/pretrain_synthetic/checkpoints/last.ckpt"),
    ]
    assert [p.name for p in run.glob("version_*")] == ["version_0"]  # one logger, on rank 0
    events = EventAccumulator(str(run / "version_0"))
    events.Reload()
    assert [s.value for s in events.Scalars("effective_batch_size")] == [4.0]

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 1
    encoder = load_encoder(run / "checkpoints" / "last.ckpt")  # single process, as linear_evaluation.py does
    expected = SampleCNN(out_dim=1)
    expected.fc = nn.Identity()
    expected.load_state_dict(
        {
            k.removeprefix("model.encoder."): v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith("model.encoder.")
        }
    )
    x = torch.randn(2, 1, 59049)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), expected.eval()(x))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_sigterm_under_ddp_stops_every_rank_after_the_same_step_and_rank_0_writes_it(tmp_path):
    """kill of rank 0 (the process Lightning's launcher started the other rank from): status 143, no rank left."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "runs" / "pretrain_synthetic"
    last = run / "checkpoints" / "last.ckpt"
    flags = [
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--max_epochs",
        "3",
        "--limit_train_batches",
        "2",
        "--limit_val_batches",
        "1",
        "--batch_size",
        "2",
        "--save_every_n_steps",
        "1",
        "--synthetic_tracks",
        "24",
        "--synthetic_duration",
        "3",
        "--dataset_dir",
        str(tmp_path / "data"),
        "--log_dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.Popen(
        [sys.executable, str(MAIN), *flags], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
        lines = [line for line in stderr.splitlines() if line.startswith("stopped by SIGTERM")]
        assert len(lines) == 1, stderr[-3000:]  # printed by rank 0 alone
        step = int(lines[0].split(" at step ")[1].split()[0])
        assert torch.load(last, weights_only=True)["global_step"] == step < 6
        for _ in range(50):  # the other rank stops at the same step, and leaves
            if not _processes_mentioning(str(tmp_path)):
                break
            time.sleep(0.2)
        assert not _processes_mentioning(str(tmp_path)), "a rank is still running"
        assert not (run / "run.lock").exists()
    finally:
        for pid in _processes_mentioning(str(tmp_path)):  # a hung rank must not outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
