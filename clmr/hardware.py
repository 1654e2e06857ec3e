"""The hardware a config asks for: what it means (`hardware`, `on_gpu`, `device_of`: the one place that decides
whether a run is on a GPU), and whether this machine can run it (`check_hardware`).

Checked when the config is read, before any data is generated or loaded: a GPU asked for on a machine
without one is one line, not a Lightning traceback minutes later. torch and Lightning are imported only
when something other than `auto` is asked for.
"""

from __future__ import annotations

import os
from argparse import Namespace
from importlib.util import find_spec
from typing import Any

from clmr.config import ConfigError
from clmr.rules import Refused

TRANSFORMER_ENGINE = "transformer-engine"  # Lightning's precisions of that name need the transformer_engine package


def parse_devices(devices: str | int) -> str | int | list[int]:
    """`auto`, a count (`2`), or a list of device ids (`0,1`)."""
    text = str(devices).strip()
    if text == "auto":
        return text
    try:
        if "," in text:
            return [int(d) for d in text.split(",") if d.strip()]
        return int(text)
    except ValueError:
        raise ConfigError(f"--devices {devices!r}: expected auto, a number, or a list like 0,1") from None


def hardware(cfg: Namespace) -> dict[str, Any]:
    """Accelerator, devices and nodes; the original `--gpus N` means accelerator gpu on N devices."""
    accelerator, _ = requested_accelerator(vars(cfg))
    devices = cfg.gpus if cfg.gpus > 0 else parse_devices(cfg.devices)
    return {"accelerator": accelerator, "devices": devices, "num_nodes": cfg.num_nodes}


def on_gpu(hw: dict[str, Any]) -> bool:
    """Whether a run on `hardware(cfg)` runs on CUDA GPUs (accelerator auto picks them when there are any)."""
    import torch

    return hw["accelerator"] in ("gpu", "cuda") or (hw["accelerator"] == "auto" and torch.cuda.is_available())


def training_on_gpu(cfg: Namespace) -> bool:
    """Whether the Trainer built from `cfg` trains on CUDA GPUs (accelerator auto picks them when there are any)."""
    return on_gpu(hardware(cfg))


def device_of(cfg: Namespace):
    """The torch device of a one-process stage (the probe, predict.py): CUDA when the config runs on a GPU."""
    import torch

    hw = hardware(cfg)
    if on_gpu(hw):
        if not torch.cuda.is_available():
            raise ConfigError(f"--accelerator {hw['accelerator']}: no CUDA device on this machine")
        return torch.device("cuda")
    return torch.device("cpu")


MAX_AUTO_WORKERS = 8


def pin_memory(cfg: Namespace) -> bool:
    """Page-locked batches make host-to-GPU copies asynchronous: worth it only when training runs on a GPU."""
    import torch

    return torch.cuda.is_available() and training_on_gpu(cfg)


def num_workers(cfg: Namespace) -> int:
    """`--workers N`, or for -1 (auto): none when training on the CPU, where workers would take cores
    from the model (reading the crops by seeking costs about 1% of a step there); on GPUs the cores
    this process may use, shared among this node's GPUs, less one for the main process, at most 8."""
    if cfg.workers >= 0:
        return cfg.workers
    if not training_on_gpu(cfg):
        return 0
    import torch

    devices = hardware(cfg)["devices"]
    if isinstance(devices, list):
        per_node = len(devices)
    elif isinstance(devices, int) and devices > 0:
        per_node = devices
    else:
        per_node = max(torch.cuda.device_count(), 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores // per_node - 1))


def requested_accelerator(values: dict[str, Any]) -> tuple[str, str]:
    """The accelerator asked for and the key that asked: `--gpus N` (N > 0) means gpu, `--gpus 0` the CPU."""
    if values["gpus"] > 0:
        return "gpu", "gpus"
    if values["gpus"] == 0:
        return "cpu", "gpus"
    return values["accelerator"], "accelerator"


def check_hardware(values: dict[str, Any]) -> None:
    """Refuse (naming the key) an accelerator, device count, strategy or precision this machine cannot run."""
    accelerator, key = requested_accelerator(values)
    devices, strategy, precision = values["devices"], values["strategy"], values["precision"]
    if (accelerator, devices, strategy) == ("auto", "auto", "auto") and not precision.startswith(TRANSFORMER_ENGINE):
        return
    import torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if accelerator in ("gpu", "cuda"):
        if not cuda and not (accelerator == "gpu" and mps):
            raise Refused(
                "GPU requested, but no CUDA GPU is visible on this machine (torch.cuda.is_available() is False)",
                key=key,
            )
        if cuda:
            _check_gpu_count(values, key, torch.cuda.device_count())
    elif accelerator not in ("auto", "cpu"):
        _check_available(accelerator, key)
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and (cuda or mps))
    if not on_gpu and accelerator in ("auto", "cpu") and devices != "auto" and ("," in devices or int(devices) < 1):
        raise Refused("expected auto or a number of processes >= 1 on the CPU", key="devices")
    if strategy != "auto":
        _check_strategy(strategy, on_gpu)
    if precision.startswith(TRANSFORMER_ENGINE) and find_spec("transformer_engine") is None:
        raise Refused("needs the transformer_engine package, which is not installed", key="precision")


def _check_gpu_count(values: dict[str, Any], key: str, visible: int) -> None:
    devices = str(values["gpus"]) if key == "gpus" else values["devices"]
    if devices in ("auto", "-1"):
        return
    if "," in devices:
        ids = [int(d) for d in devices.split(",") if d.strip()]
        if max(ids) >= visible:
            raise Refused(
                f"GPU {max(ids)} requested, but {visible} GPU(s) are visible (ids 0-{visible - 1})", key="devices"
            )
    elif int(devices) > visible:
        raise Refused(
            f"{devices} GPUs requested, but {visible} are visible", key="gpus" if key == "gpus" else "devices"
        )


def _check_available(accelerator: str, key: str) -> None:
    from pytorch_lightning.accelerators import AcceleratorRegistry

    def available(name: str) -> bool:
        return AcceleratorRegistry[name]["accelerator"].is_available()

    if not available(accelerator):
        here = [name for name in sorted(AcceleratorRegistry.available_accelerators()) if available(name)]
        raise Refused(f"not available on this machine (available here: {', '.join(here)})", key=key)


def _check_strategy(strategy: str, on_gpu: bool) -> None:
    from pytorch_lightning.accelerators import XLAAccelerator
    from pytorch_lightning.strategies import FSDPStrategy, SingleDeviceXLAStrategy, StrategyRegistry, XLAStrategy

    if strategy in FSDPStrategy.get_registered_strategies() and not on_gpu:
        raise Refused("FSDP runs only on GPUs", key="strategy")
    if issubclass(StrategyRegistry[strategy]["strategy"], (XLAStrategy, SingleDeviceXLAStrategy)):
        if not XLAAccelerator.is_available():
            raise Refused("needs a TPU (torch_xla), which this machine does not have", key="strategy")
        return
    try:
        StrategyRegistry.get(strategy)
    except Exception as err:  # noqa: BLE001 - a strategy refuses as it likes when its package is missing
        raise Refused(f"cannot be used here ({str(err).splitlines()[0]})", key="strategy") from None
