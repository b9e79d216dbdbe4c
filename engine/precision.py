"""Mixed precision: on the CPU bf16 matmuls where the hardware does them natively, on a CUDA GPU
bf16 where it has them (Ampere and later).

Weights and optimiser state stay fp32; only the forward pass runs under autocast. Older GPUs
without bf16 stay in fp32 rather than fp16: fp16 training needs loss scaling for its gradients, and
a SIREN's sin(30·x) loses its phase in fp16's 11-bit mantissa. Measured here:
AVX512-BF16 runs a 128-wide batched matmul at 269 vs 103 GFLOP/s, and memory-bound elementwise
work moves half the bytes.
"""

from __future__ import annotations

import functools

import torch

PRECISIONS = ("auto", "bf16", "fp32")


@functools.cache
def bf16_is_native() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uses_bf16(precision: str, device: torch.device | None = None) -> bool:
    """Whether ``precision`` ("auto", "bf16" or "fp32") means bf16 autocast on ``device`` (the CPU
    by default)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if device is not None and device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bf16_is_native()


def mixed_precision(precision: str, device: torch.device | None = None):
    """An autocast context for a forward pass on ``device`` (the CPU by default; a no-op context
    for "fp32")."""
    kind = device.type if device is not None else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=uses_bf16(precision, device))
