"""The one model-agnostic, block-sequential pruning driver (algorithms.md §1.1).

Capture the inputs of block 0 once; then for each block: move it to the compute device, hook its
linears and accumulate the statistics the method declared (H, or only the input norms) once per
distinct input, prune every target linear, re-run the pruned block to produce the next block's
inputs, move it back. A method that reads no data (magnitude) runs no forward pass at all. Only
one block is on the device at a time; block activations live on `store` (the device when they
fit, else the CPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .blocks import BlockInputs, activation_store, capture_inputs, run_block, target_linears
from .dense_target import CrossHooks, shifted_weight
from .methods import METHODS
from .numerics import no_tf32
from .pack import attach_grid
from .profiles import layer_slots, layer_targets, owl_ratios
from .source import Resident
from .spec import PruneSpec
from .stats import ACCUMULATORS, LayerStats, layer_error

log = logging.getLogger(__name__)


@dataclass
class LayerReport:
    name: str
    shape: tuple[int, int]
    sparsity: float
    rel_error: float | None  # None for a method that reads no data (stats.layer_error)
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    target: float | None = None  # the sparsity the profile gave this layer


@dataclass
class Progress:
    """Passed to the progress callback after every pruned layer (and once per stage change)."""

    stage: str  # "calibrating" | "measuring-outliers" (owl) | "resuming" | "pruning" | "done"
    layers_done: int
    layers_total: int
    layer: LayerReport | None = None
    elapsed: float = 0.0
    blocks: tuple[int, int] | None = None  # "resuming": (blocks already done, blocks in all)
    # the pace: layers pruned by this run and the seconds since its layer loop began. Calibration,
    # OWL's measuring pass and a resumed run's replayed blocks are not layer time.
    pace: tuple[int, float] | None = None
    point: str | None = None  # in a sweep: "2 of 5 (0.6)"
    step: tuple[int, int, str] | None = None  # inside a stage without layers: (done, total, of what)

    @property
    def eta_seconds(self) -> float | None:
        if self.stage != "pruning" or not self.pace or not self.pace[0]:
            return None
        layers, seconds = self.pace
        return seconds / layers * (self.layers_total - self.layers_done)


@dataclass
class PruneResult:
    layers: list[LayerReport]
    # name -> (bit-packed keep mask, shape); or, for a run with a resume state, the per-block
    # mask files it wrote (export.merge_mask_files)
    masks: dict[str, tuple[np.ndarray, tuple[int, int]]] | list[Path]
    seconds: float
    profile: dict[str, Any] = field(default_factory=dict)  # the sparsity profile and what it measured

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over all pruned layers."""
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        zeros = sum(r.sparsity * r.shape[0] * r.shape[1] for r in self.layers)
        return zeros / total if total else 0.0


ProgressFn = Callable[[Progress], None]


class _StatsHooks:
    """Forward hooks that accumulate the declared statistics ("gram" or "norms") once per
    distinct input tensor of a block's target linears.

    Linears fed the very same tensor (q/k/v; gate/up) are detected on the first batch by tensor
    identity and share one accumulator. Inputs are held until the batch ends so that a freed
    tensor's memory cannot be reused by a later input and fake a match."""

    def __init__(self, linears: dict[str, nn.Linear], device, kind: str):
        self.leader: dict[str, str] = {}
        self.acc: dict = {}
        self.make = ACCUMULATORS[kind]
        self._seen: dict[int, str] = {}
        self._alive: list[torch.Tensor] = []
        self._handles = [lin.register_forward_hook(self._hook(name)) for name, lin in linears.items()]
        self.device = device
        self.active = True  # off while the block runs on the dense stream (dense_target)

    def _hook(self, name: str):
        def hook(module, args, output):
            if not self.active:
                return
            x = args[0]
            if name not in self.leader:
                self.leader[name] = self._seen.setdefault(id(x), name)
                self._alive.append(x)
            if self.leader[name] == name:
                if name not in self.acc:
                    self.acc[name] = self.make(x.shape[-1], self.device)
                self.acc[name].add(x)
        return hook

    def end_batch(self) -> None:
        self._seen.clear()
        self._alive.clear()

    def stats(self) -> dict[str, LayerStats]:
        finished = {name: acc.finish() for name, acc in self.acc.items()}
        return {name: finished[leader] for name, leader in self.leader.items()}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _prune_block(block, linears, stats, spec, method, options, prefix, on_layer, targets=None, cross=None) -> None:
    """Prune every target linear of one block with the statistics of its input, each to its
    profile target (`targets`: full name -> sparsity; None: all at spec.sparsity). A layer the
    profile gives 0 is left untouched. `cross` (name -> C, dense_target) moves each layer's
    target towards the dense model's output before the method sees it."""
    if any(lin.weight.is_cuda for lin in linears.values()):
        # CUDA runs the calibration forward passes asynchronously: wait for them here, or the
        # first layer's reported seconds would include them (4 s per LLaMA-7B block on an H100)
        torch.cuda.synchronize()
    for name, lin in linears.items():
        t0 = time.perf_counter()
        target = targets[f"{prefix}.{name}"] if targets is not None else spec.sparsity
        if targets is not None and target == 0:  # a rule left it dense: not even quantized
            keep = torch.ones(lin.weight.shape, dtype=torch.bool)
            on_layer(LayerReport(f"{prefix}.{name}", tuple(lin.weight.shape), 0.0, 0.0, 0.0, {"dense": True}, 0.0),
                     np.packbits(keep.numpy().reshape(-1)))
            continue
        W = lin.weight.data.to(torch.float32)
        layer_stats = stats.get(name) if stats is not None else None
        with no_tf32():
            if cross is not None:  # the error below is then measured against this target
                W = shifted_weight(W, layer_stats.H, cross[name], spec.dense_target, options.percdamp)
            result = method.prune_layer(W, layer_stats, spec if target == spec.sparsity else spec.at(target), options)
        W_hat = (result.weight * result.mask).to(lin.weight.dtype)
        err, basis = layer_error(W, W_hat.to(torch.float32), layer_stats)
        lin.weight.data.copy_(W_hat)
        if result.bias_delta is not None and lin.bias is not None:
            lin.bias.data.add_(result.bias_delta.to(lin.bias.dtype))
        if result.grid is not None:  # the checkpoint writer packs the layer with it (pruning_core.pack)
            attach_grid(lin, result.grid)
        keep = result.mask.to("cpu")
        report = LayerReport(
            name=f"{prefix}.{name}",
            shape=tuple(W.shape),
            sparsity=1.0 - keep.sum().item() / keep.numel(),
            rel_error=err,
            seconds=time.perf_counter() - t0,
            info={**result.info, "rel_error_basis": basis},
            target=target,
        )
        on_layer(report, np.packbits(keep.numpy().reshape(-1)))


def _gather(block, linears, inputs: BlockInputs, device, store, kind: str) -> dict[str, LayerStats]:
    """Run the (dense) block over every calibration batch with hooks gathering `kind` statistics."""
    hooks = _StatsHooks(linears, device, kind)
    try:
        for hidden, kwargs in zip(inputs.hidden, inputs.kwargs):
            run_block(block, BlockInputs([hidden], [kwargs]), device, store)
            hooks.end_batch()
    finally:
        hooks.remove()
    return hooks.stats()


def _gather_both(block, linears, inputs: BlockInputs, dense: list[torch.Tensor], device, store, kind):
    """`_gather` plus the dense stream (dense_target): per batch the still dense block runs first
    on the dense stream's inputs, its outputs kept as that stream's next inputs and its layer
    inputs held, then on the pruned stream's with the statistics and cross-product hooks.
    Returns (statistics, name -> C, the dense stream's next inputs)."""
    hooks, cross = _StatsHooks(linears, device, kind), CrossHooks(linears)
    outputs = []
    try:
        for hidden, twin, kwargs in zip(inputs.hidden, dense, inputs.kwargs):
            hooks.active, cross.recording = False, True
            outputs += run_block(block, BlockInputs([twin], [kwargs]), device, store)
            hooks.active, cross.recording = True, False
            run_block(block, BlockInputs([hidden], [kwargs]), device, store)
            hooks.end_batch()
            cross.end_batch()
    finally:
        hooks.remove()
        cross.remove()
    return hooks.stats(), cross.cross(), outputs


@torch.no_grad()
def prune_model(
    model: nn.Module,
    calib_ids: torch.Tensor,
    spec: PruneSpec,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    batch_size: int = 8,
) -> PruneResult:
    """Prune `model` in place on calibration token ids `calib_ids` [nsamples, seqlen].

    The model's weights may live on the CPU; each block is moved to `device` only while it is
    processed. `progress` is called after every layer; it may raise `errors.Cancelled` to stop
    between layers (the model is then partially pruned and should be discarded)."""
    was_training = model.training
    model.eval()
    try:
        return prune_blocks(Resident(model), calib_ids, spec, device, progress, batch_size)
    finally:
        model.train(was_training)


@torch.no_grad()
def prune_blocks(
    source,
    calib_ids: torch.Tensor,
    spec: PruneSpec,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    batch_size: int = 8,
    resume=None,
) -> PruneResult:
    """The block loop (algorithms.md, the sequential driver), fed by a block source
    (source.Resident or source.Streamed): capture block 0's inputs once, then per block:
    accumulate the statistics of every target linear's input, prune them, hand the block to
    the source as finished, and run the pruned block to produce the next block's inputs.

    `resume` (resume.ResumeState) holds the blocks an earlier attempt finished: they are not
    pruned again; their pruned weights are only run forward to rebuild the next inputs, exactly
    the inputs an uninterrupted run would have had. Each newly finished block is recorded."""
    device = torch.device(device)
    method = METHODS[spec.method]
    options = spec.method_options()
    notify = progress or (lambda p: None)
    t_start = time.perf_counter()
    model, blocks, block_path = source.model, source.blocks, source.block_path

    per_block = len(target_linears(blocks[0], f"{block_path}.0", spec.ignore))
    total = per_block * len(blocks)
    kind = method.stats  # "none" | "norms" | "gram"
    notify(Progress("calibrating", 0, total))
    inputs = store = None
    if spec.reads_data:
        hidden_size = model.get_input_embeddings().weight.shape[1]
        streams = 2 if spec.dense_target else 1  # the dense target carries a second, unpruned stream
        store = activation_store(device, streams * calib_ids.numel() * hidden_size * 4)

    def capture() -> BlockInputs:
        with source.outside(device):
            return capture_inputs(model, blocks, list(calib_ids.split(batch_size)), device, store)

    if spec.reads_data:
        inputs = capture()
    if resume is not None and resume.plan is not None:  # the targets the first attempt planned
        targets, profile = resume.plan["targets"], resume.plan["profile"]
    else:
        ratios = None
        if spec.profile.kind == "owl":
            notify(Progress("measuring-outliers", 0, total))
            ratios = owl_ratios(source, spec, inputs, device, store, _gather, run_block)
            inputs = capture() if kind != "none" else None  # block 0's inputs again, for pruning
        targets, profile = layer_targets(layer_slots(block_path, blocks, spec, method.per_row(options)), spec, ratios)
        if resume is not None:
            resume.record_plan({"targets": targets, "profile": profile})
    if kind == "none":
        inputs = None  # a method that reads no data runs no forward pass while it prunes
    # the dense stream starts from block 0's inputs like the pruned one
    dense = [h.clone() for h in inputs.hidden] if spec.dense_target and inputs is not None else None

    start = resume.blocks_done if resume is not None else 0
    reports: list[LayerReport] = list(resume.reports) if start else []
    # with a resume state each block's masks go to its files as the block finishes, not to memory
    packed: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
    if start:
        notify(Progress("resuming", len(reports), total, blocks=(start, len(blocks))))
        for index in range(start if inputs is not None else 0):
            source.open(index, device, pruned=True)
            try:
                inputs.hidden = run_block(source.blocks[index], inputs, device, store)
            finally:
                source.close(index)
            if dense is not None:  # and the dense stream through the block as the checkpoint has it
                source.open(index, device)
                try:
                    dense = run_block(source.blocks[index], BlockInputs(dense, inputs.kwargs), device, store)
                finally:
                    source.close(index)

    resumed, t_layers = len(reports), time.perf_counter()

    def on_layer(report: LayerReport, bits: np.ndarray) -> None:
        reports.append(report)
        packed[report.name] = (bits, report.shape)
        log.info("%s sparsity=%.4f rel_error=%s %.2fs", report.name, report.sparsity, report.rel_error, report.seconds)
        now = time.perf_counter()
        notify(Progress("pruning", len(reports), total, report, now - t_start,
                        pace=(len(reports) - resumed, now - t_layers)))

    for index in range(start, len(blocks)):
        prefix = f"{block_path}.{index}"
        first = len(reports)
        block = source.open(index, device)
        try:
            linears = target_linears(block, prefix, spec.ignore)
            stats = cross = None
            if dense is not None:
                stats, cross, dense = _gather_both(block, linears, inputs, dense, device, store, kind)
            elif inputs is not None:
                stats = _gather(block, linears, inputs, device, store, kind)
            _prune_block(block, linears, stats, spec, method, options, prefix, on_layer, targets, cross)
            del stats, cross
            source.finished(index)
            if resume is not None:
                resume.record_block(index, reports[first:], {r.name: packed.pop(r.name) for r in reports[first:]})
            if inputs is not None:
                inputs.hidden = run_block(block, inputs, device, store)
        finally:
            source.close(index)
    result = PruneResult(reports, packed if resume is None else resume.mask_files(), time.perf_counter() - t_start,
                         profile)
    notify(Progress("done", total, total, None, result.seconds))
    return result
