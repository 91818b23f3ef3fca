"""The whole job: load the model, evaluate it dense, calibrate, prune, evaluate pruned, publish.

Used by the CLI and the worker alike. Progress goes through one callback; it may raise
`errors.Cancelled` between layers or stages.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from . import data, export, models, pack, zeroshot
from .checkpoint import LazyCheckpoint, shard_map
from .driver import Progress, PruneResult, prune_blocks
from .errors import DiskFull, ModelNotFound, SpecError
from .evaluate import perplexity
from .quant import mask_bits_per_weight
from .resume import ResumeState, fingerprint
from .shards import ShardWriter
from .source import Resident, Streamed
from .spec import EvalSpec, JobSpec, PruneSpec, layout

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SpecError("device cuda requested but CUDA is not available", "device")
    return dev


def versions() -> dict[str, str]:
    import transformers

    try:
        ours = metadata.version("topiary")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    return {"torch": torch.__version__, "transformers": transformers.__version__, "topiary": ours}


def _evaluate(model, tokenizer, spec: EvalSpec, seqlen: int, device, root, allow_download, notify,
              stage: str, source=None) -> dict[str, dict]:
    """{"ppl": perplexity per requested dataset, "tasks": zero-shot results per task};
    `stage` is "evaluating-dense" or "evaluating"."""
    ppl: dict[str, dict] = {}
    steps = len(spec.datasets) + len(spec.tasks)
    for done, name in enumerate(spec.datasets):
        notify(Progress(stage, done, steps))
        ids = tokenizer(data.eval_text(name, root, allow_download), return_tensors="pt").input_ids[0]
        # every batch reports, so a cancel is honoured between windows, not after the dataset
        value, windows = perplexity(model, ids, seqlen, spec.limit, device, source=source,
                                    progress=lambda rows, total, d=done, n=name: notify(
                                        Progress(stage, d, steps, step=(rows, total, f"{n} windows"))))
        ppl[name] = {"ppl": value, "windows": windows, "seqlen": seqlen}
    tasks = {}
    if spec.tasks:
        tasks = zeroshot.zero_shot(model, tokenizer, spec.tasks, device, root, spec.task_limit,
                                   lambda done, _: notify(Progress(stage, len(spec.datasets) + done, steps,
                                                                   step=(done, len(spec.tasks), "zero-shot tasks"))),
                                   source=source)
    return {"ppl": ppl, "tasks": tasks}


def quantization_summary(spec: PruneSpec, result: PruneResult) -> dict[str, Any] | None:
    """Effective storage of the pruned layers: value bits (kept weights + grids) and mask bits."""
    if spec.quant is None:
        return None
    quantized = [r for r in result.layers if "bits_per_weight" in r.info]  # a profile rule may leave some dense
    sizes = [r.shape[0] * r.shape[1] for r in quantized]
    values = sum(r.info["bits_per_weight"] * n for r, n in zip(quantized, sizes)) / max(sum(sizes), 1)
    mask = mask_bits_per_weight(spec.pattern)
    return {"bits": spec.quant.bits, "group_size": spec.quant.group_size, "bits_per_weight": values,
            "mask_bits_per_weight": mask, "bits_per_weight_with_mask": values + mask,
            "dense_layers": len(result.layers) - len(quantized)}


def build_report(job: JobSpec, result: PruneResult, dense: dict, pruned: dict, device, timings: dict) -> dict[str, Any]:
    spec = job.spec
    ppl = {}
    for name, res in pruned["ppl"].items():
        ppl[name] = {"dense": dense.get("ppl", {}).get(name, {}).get("ppl"), "pruned": res["ppl"], "seqlen": res["seqlen"], "windows": res["windows"]}
    return {
        "model": job.model,
        "method": spec.method,
        "pattern": str(spec.pattern),
        "sparsity_target": spec.sparsity,
        "sparsity_achieved": result.sparsity,
        "sparsity_profile": result.profile,
        "dense_target": spec.dense_target,
        "options": spec.to_dict()["options"],
        "calibration": dataclasses.asdict(spec.calibration),
        "quantization": quantization_summary(spec, result),
        "perplexity": ppl,
        # per task: dense and pruned accuracies (acc, and acc_norm where the harness reports it)
        "zero_shot": {name: {"dense": dense.get("tasks", {}).get(name), "pruned": res, "docs": res["docs"]}
                      for name, res in pruned["tasks"].items()},
        "layers": [
            {"name": r.name, "shape": list(r.shape), "target": r.target, "sparsity": r.sparsity, "rel_error": r.rel_error,
             "seconds": r.seconds, **r.info}
            for r in result.layers
        ],
        "seconds_total": timings["total"],
        "timings": timings,
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "dtype": job.dtype,
        "versions": versions(),
    }


def peak_memory(device: torch.device) -> dict:
    """This process's peak resident memory so far and the device's peak allocation (None off
    CUDA): what a job needed, for the worker's metrics and for calibrating estimates."""
    gpu = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"host_bytes": host_peak_bytes(), "gpu_bytes": gpu}


def host_peak_bytes() -> int:
    """The resident high-water mark of this process's own memory (VmHWM). Not getrusage's
    ru_maxrss: Linux carries that across fork and exec, so a job process started by a large
    parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # elsewhere: the best there is


def open_model(job: JobSpec):
    """(block source, tokenizer). A safetensors model directory (the bundled model's cache, a
    hub snapshot) is opened lazily and streamed block by block; anything else (a GGUF file, a
    hub id to download) is loaded whole."""
    models.check_dtype(job.dtype)
    location = models.resolve(job.model)
    path = Path(location)
    if path.is_dir() and shard_map(path) is not None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise ModelNotFound(f"cannot load the tokenizer of {job.model!r}: {str(exc).splitlines()[0]}", "model") from exc
        return Streamed(LazyCheckpoint(path, job.dtype)), tokenizer
    model, tokenizer = models.load(job.model, job.dtype)
    return Resident(model), tokenizer


def preflight(job: JobSpec, out: Path, data_root: Path | None = None, allow_download: bool = False) -> None:
    """Everything that can fail before the model loads, checked before it loads: the output
    directory, the model reference, the calibration source, the evaluation data and task files."""
    export.check_output_dir(out)
    models.check_openable(job.model)
    layout.check(models.config_for(job.model), job.spec)
    if job.spec.reads_data:
        data.check_calibration_source(job.spec.calibration.source, data_root, allow_download)
    for name in job.evaluation.datasets:
        data.check_available(data.EVAL_FILES, name, data_root, allow_download)
    for name in job.evaluation.tasks:
        zeroshot.task_file(name, data_root)


def run(job: JobSpec, out_dir: str | Path, progress: Callable[[Progress], None] | None = None,
        data_root: Path | None = None, allow_download: bool = False,
        resume_dir: Path | None = None, dense_cache: dict | None = None) -> dict[str, Any]:
    """Run `job` end to end and publish into `out_dir`; returns the report. `dense_cache`: a dict
    that keeps the dense evaluation for the next run on the same model (a sweep). A streamed model
    writes each pruned block to a work directory as it finishes; the published directory
    appears, whole, only at the end. With `resume_dir` that work directory persists: a run
    that finds an earlier attempt's blocks there (same job) continues after them."""
    out = Path(out_dir)
    preflight(job, out, data_root, allow_download)  # fail before an hour of work, not after
    out.parent.mkdir(parents=True, exist_ok=True)
    # without a resume directory the work area is a throwaway sibling of the output
    work = Path(resume_dir) if resume_dir else Path(tempfile.mkdtemp(prefix=f".{out.name}.work-", dir=out.parent))
    try:
        return _run(job, out, work, progress or (lambda p: None), data_root, allow_download,
                    {} if dense_cache is None else dense_cache)
    except Exception as exc:
        if _out_of_space(exc):
            raise DiskFull(f"no space left on the device while writing {getattr(exc, 'filename', None) or out}") \
                from None
        raise
    finally:
        if not resume_dir:
            shutil.rmtree(work, ignore_errors=True)


def _out_of_space(exc: BaseException) -> bool:
    """ENOSPC as Python raises it, or as safetensors' Rust writer reports it (a SafetensorError
    whose text carries the OS error, not an OSError)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return type(exc).__name__ == "SafetensorError" and f"os error {errno.ENOSPC})" in str(exc)


def _run(job: JobSpec, out: Path, work: Path, notify, data_root, allow_download, dense_cache: dict) -> dict[str, Any]:
    device = pick_device(job.device)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notify(Progress("loading", 0, 0))
    source, tokenizer = open_model(job)
    model, streamed = source.model, isinstance(source, Streamed)
    cal = job.spec.calibration
    calib = None  # a method that reads no data (magnitude) tokenizes no calibration text
    if job.spec.reads_data:
        calib = data.calibration_ids(cal.source, lambda t: tokenizer(t).input_ids, cal.nsamples, cal.seqlen,
                                     cal.seed, data_root, allow_download)
    timings["load"] = time.perf_counter() - t0
    eval_seqlen = job.evaluation.seqlen or cal.seqlen
    evaluate = functools.partial(_evaluate, model, tokenizer, job.evaluation, eval_seqlen, device, data_root,
                                 allow_download, notify, source=source)
    state = None
    if streamed:
        state = ResumeState(work, fingerprint(job.model, job.spec.to_dict(), job.dtype, dataclasses.asdict(job.evaluation),
                                              dataclasses.asdict(job.spec.calibration)))
        source.sink = ShardWriter(state.model_dir, len(source.blocks))
    dense = state.dense if state is not None and state.dense is not None else dense_cache.get("dense", {})
    if not dense and job.evaluation.dense and (job.evaluation.datasets or job.evaluation.tasks):
        t = time.perf_counter()
        dense = evaluate("evaluating-dense")
        timings["eval_dense"] = time.perf_counter() - t
        if state is not None:
            state.record_dense(dense)
    dense_cache["dense"] = dense
    result = prune_blocks(source, calib, job.spec, device, notify, resume=state)
    if streamed:  # the rest of the model, then read the pruned shards back for evaluation
        with source.outside("cpu"):
            source.sink.write_outside(model, source.block_path)
        source.sink.finish(model, tokenizer)
        source.checkpoint.reopen(source.sink.directory)
    timings["prune"] = result.seconds
    t = time.perf_counter()
    pruned = evaluate("evaluating")
    timings["eval_pruned"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    report = build_report(job, result, dense, pruned, device, timings)
    report["dtype_stored"] = str(next(model.parameters()).dtype).removeprefix("torch.")  # what "auto" found
    report["peak_memory"] = peak_memory(device)
    report["streamed"] = streamed
    if streamed:
        report["peak_blocks_in_memory"] = source.checkpoint.peak_live
    notify(Progress("saving", 0, 0))
    finish = None
    if job.spec.quant is not None:
        linears = [name for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)]

        def finish(directory: Path) -> None:  # the stored form of the quantized layers (pruning_core.pack)
            report["quantization"]["checkpoint"] = pack.finish_directory(directory, job.spec.quant, linears)

    if streamed:
        export.publish_dir(out, source.sink.directory, result.masks, report, finish)
    else:
        export.publish(out, model, tokenizer, result.masks, report, finish)
    return report
