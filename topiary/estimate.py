"""`topiary prune ... --estimate`: what the job would need on this machine, from the model's
config.json alone (pruning_core.spec.estimate, the cost model the API admits jobs with)."""

from __future__ import annotations

import os

import typer

from pruning_core.spec import JobSpec, layout
from pruning_core.spec import estimate as cost

GIB = 1 << 30


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def show(job: JobSpec) -> int:
    """Print the estimate; 0 when this machine fits the job, 1 when it does not, 2 when it cannot be made."""
    from worker.registry import gpu

    config = layout.read_config(job.model)
    streamed = not job.model.endswith(".gguf")
    gpu_name, gpu_bytes = gpu()
    device = job.device.split(":")[0]
    device = ("cuda" if gpu_name else "cpu") if device == "auto" else device
    needs = cost.estimate(config, job, device, streamed) if config else None
    if needs is None:
        typer.echo(f"topiary: error: cannot estimate {job.model!r}: no config.json of a known model family "
                   "(a bundled model or a local LLaMA/Mistral/Qwen/Gemma/OLMo/OPT directory)", err=True)
        return 2
    host_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    low, high = cost.seconds_range(needs)
    fits = cost.fits(needs, host_bytes, gpu_bytes if device == "cuda" else None)
    machine = f"{gpu_name} {gpu_bytes / GIB:.0f} GiB, " if device == "cuda" and gpu_name else ""
    typer.echo(f"model      {job.model}: {needs.params / 1e6:.1f}M parameters, {'streamed block by block' if streamed else 'loaded whole'}")
    typer.echo(f"runs on    {device} ({machine}{host_bytes / GIB:.1f} GiB host memory)")
    typer.echo(f"host mem   {needs.host_bytes / GIB:.2f} GiB peak")
    if needs.gpu_bytes is not None:
        typer.echo(f"GPU mem    {needs.gpu_bytes / GIB:.2f} GiB peak (+{cost.CUDA_CONTEXT_BYTES / GIB:.0f} GiB CUDA context)")
    typer.echo(f"disk       {needs.disk_bytes / GIB:.2f} GiB (result and resume area)")
    typer.echo(f"time       {duration(low)} to {duration(high)} (expected {duration(needs.seconds)})")
    typer.echo(f"verdict    {'fits this machine' if fits else 'does NOT fit this machine'}")
    return 0 if fits else 1
