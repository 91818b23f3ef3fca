"""What a job will need, from the model's config.json and the job spec alone (no weights read,
torch-free: the API answers POST /v1/jobs/estimate and admits jobs with it; `topiary prune
--estimate` prints it).

The cost model follows what the pipeline holds at its peak (pruning_core.pipeline, streamed
path): the process itself (Python, torch, transformers, the tokenizer), the parts outside the
blocks (embeddings, head) resident in the stored dtype, then the larger of two phases: pruning
(one block as stored, the calibration activations entering and leaving it, the per-input
statistics of the methods that use a Hessian, and the solver's working set on the largest layer,
a per-method multiple of that layer's W and H in float32) or evaluation (a batch of perplexity
windows' logits with their temporaries). A model that cannot stream (a GGUF file) is held whole.
On CUDA the block, activations, statistics, solver and logits live on the GPU; the host keeps the
rest.

Duration: seconds = forward FLOPs / a device's forward rate + the method's solver work (Σ over
layers of rows·cols², the shape term that dominates the OBS sweep and ALPS's updates) / its
method rate, + evaluation forwards + a fixed start-up. Rates are calibrated per device class on
measured runs (bench/estimate.py); the range reported is [low, high] × the point estimate, the
spread those runs showed between repeated measurements and across shapes. The README states the
model's measured error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from .job import JobSpec
from .layout import block_linears

GIB = 1 << 30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# the process before any weight: Python, torch, transformers, tokenizer, calibration text
PROCESS_BYTES = int(0.6 * GIB)
EVAL_BATCH = 4  # perplexity windows per forward (pruning_core.evaluate.perplexity)
EVAL_COPIES = 3  # logits, log-softmax, loss temporaries
CUDA_CONTEXT_BYTES = 1 * GIB  # not in torch's allocator counts, but taken from the GPU's memory
# the solver's working set on one layer: multiples of (rows·cols·4, cols²·4) beyond W and H
SOLVER = {"magnitude": (1, 0), "wanda": (2, 0), "sparsegpt": (3, 3), "alps": (8, 4), "pgz": (6, 3)}
HESSIAN_METHODS = {"sparsegpt", "alps", "pgz"}
# seconds per unit, by device class: forward FLOPs, and each method's rows·cols² solver work
# (its statistics included). CPU: fitted on bench/results/estimate_calibration.json (2 cores);
# PGZ was not run there and is set at twice ALPS, its ratio on the H100.
RATES = {
    "cpu": {"forward": 1 / 1.2e11, "magnitude": 1e-12, "wanda": 1e-12, "sparsegpt": 2.0e-10, "alps": 3.5e-9,
            "pgz": 7.0e-9},
    # from bench/results/gpu_model_llama7b.json (H100, 2 LLaMA-7B blocks, 128x2048 tokens): each
    # method's layer seconds over its rows·cols² work, the rest of the run over its forward FLOPs
    "cuda": {"forward": 1 / 2.5e13, "magnitude": 1e-13, "wanda": 4.2e-13, "sparsegpt": 3.8e-12, "alps": 6.2e-12,
             "pgz": 1.35e-11},
}
START_SECONDS = {"cpu": 8.0, "cuda": 20.0}  # imports, tokenizer, calibration text, CUDA init
SPREAD = {"cpu": (0.5, 2.0), "cuda": (0.33, 3.0)}  # the range around the point estimate
ZERO_SHOT_TOKENS = 4 * 128  # per item: choices × a typical context + continuation
DATASET_TOKENS = 300_000  # a whole perplexity test split (WikiText-2 test is about this size)
TASK_ITEMS = 2000  # a whole zero-shot task, on average


@dataclass(frozen=True)
class Shape:
    """The model's sizes that drive memory and time."""

    blocks: int
    hidden: int
    vocab: int
    block_params: int
    outside_params: int  # embeddings + head (once when tied)
    stored_bytes: int  # per parameter, the dtype the job keeps
    layers: tuple[tuple[int, int], ...]  # (rows, cols) of one block's pruned linears
    inputs: tuple[int, ...]  # cols of each distinct input a block's layers share (one H each)

    @property
    def params(self) -> int:
        return self.blocks * self.block_params + self.outside_params


@dataclass(frozen=True)
class Needs:
    host_bytes: int
    gpu_bytes: int | None  # None for a CPU job
    disk_bytes: int
    seconds: float  # the point estimate; the range depends on the worker class
    device: str  # cpu | cuda: where the job's work runs
    params: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape(config: Mapping[str, Any], dtype: str = "auto") -> Shape | None:
    """The shape of a known model family, or None (the estimate then cannot be made)."""
    found = block_linears(config)
    if found is None:
        return None
    _, linears = found
    hidden, vocab = int(config["hidden_size"]), int(config.get("vocab_size") or 32000)
    stored = dtype if dtype != "auto" else str(config.get("dtype") or config.get("torch_dtype") or "float32")
    layers = tuple((rows, cols) for _, rows, cols in linears)
    # one H per distinct input: k/v read q's input, up reads gate's
    inputs = tuple(cols for name, _, cols in linears if name.rsplit(".", 1)[-1] not in ("k_proj", "v_proj", "up_proj"))
    tied = config.get("tie_word_embeddings", True)
    return Shape(blocks=int(config["num_hidden_layers"]), hidden=hidden, vocab=vocab,
                 block_params=sum(r * c for r, c in layers), outside_params=vocab * hidden * (1 if tied else 2),
                 stored_bytes=DTYPE_BYTES.get(stored, 4), layers=layers, inputs=inputs)


def estimate(config: Mapping[str, Any], job: JobSpec, device: str, streamed: bool = True) -> Needs | None:
    """What `job` needs on a `device` ("cpu" or "cuda") worker; None for an unknown family. A
    sweep runs its points one after another and keeps every point's checkpoint: the memory of its
    largest point, the time and disk of all of them (the shared dense evaluation counted once per
    point: an over-estimate of the time)."""
    if job.sweep:
        points = [estimate(config, point, device, streamed) for _, point in job.points()]
        if points[0] is None:
            return None
        return replace(max(points, key=lambda n: (n.host_bytes, n.gpu_bytes or 0)),
                       disk_bytes=sum(n.disk_bytes for n in points), seconds=sum(n.seconds for n in points))
    sh = shape(config, job.dtype)
    if sh is None:
        return None
    spec, cal = job.spec, job.spec.calibration
    tokens = cal.nsamples * cal.seqlen if spec.reads_data else 0
    largest = max(sh.layers, key=lambda rc: rc[0] * rc[1])
    k_w, k_h = SOLVER.get(spec.method, (4, 4))
    stats = sum(c * c * 4 for c in sh.inputs) if spec.method in HESSIAN_METHODS else 0
    streams = 2 if spec.dense_target else 1  # the dense target's unpruned stream, and its C beside each H
    work = (sh.block_params * sh.stored_bytes  # the block being pruned, as stored
            + 2 * streams * tokens * sh.hidden * 4  # activations entering and leaving it
            + streams * stats + k_w * largest[0] * largest[1] * 4 + k_h * largest[1] ** 2 * 4)
    ev = job.evaluation
    windows = min(ev.limit or EVAL_BATCH, EVAL_BATCH) if ev.datasets else 0
    # a batch of perplexity windows' float32 logits, with the log-softmax and loss temporaries
    evaluation = EVAL_COPIES * windows * (ev.seqlen or cal.seqlen) * sh.vocab * 4
    resident = sh.outside_params * sh.stored_bytes
    if not streamed:
        resident += sh.blocks * sh.block_params * sh.stored_bytes
    # pruning and evaluation come one after the other: the larger of the two sets the peak
    if device == "cuda":
        host = PROCESS_BYTES + resident + 2 * sh.block_params * sh.stored_bytes  # staging to and from the GPU
        gpu = max(work, evaluation)
    else:
        host, gpu = PROCESS_BYTES + resident + max(work, evaluation), None
    return Needs(host_bytes=int(host), gpu_bytes=None if gpu is None else int(gpu),
                 disk_bytes=int(disk(sh, job)), seconds=seconds(sh, job, device, tokens), device=device,
                 params=sh.params)


def disk(sh: Shape, job: JobSpec) -> int:
    """The published result (model, masks), plus the resume area's copy of the pruned blocks
    while the job runs."""
    pruned = sh.blocks * sh.block_params
    quant = job.spec.quant
    if quant is not None and quant.format == "packed":
        model = sh.outside_params * sh.stored_bytes + pruned * (quant.bits / 8 + 4 / (quant.group_size or 4096))
    else:
        model = sh.params * sh.stored_bytes
    masks = pruned  # one byte per pruned weight
    return int(model + masks + pruned * sh.stored_bytes)


def seconds(sh: Shape, job: JobSpec, device: str, tokens: int) -> float:
    rates = RATES["cuda" if device == "cuda" else "cpu"]
    # two forwards of every block (statistics, then the pruned outputs), 2 FLOPs per weight per
    # token; a third on the dense stream with the dense target
    forward = (3 if job.spec.dense_target else 2) * 2 * sh.blocks * sh.block_params * tokens
    solve = sh.blocks * sum(r * c * c for r, c in sh.layers)
    ev = job.evaluation
    eval_tokens = len(ev.datasets) * (ev.limit * (ev.seqlen or job.spec.calibration.seqlen) if ev.limit else DATASET_TOKENS)
    eval_tokens += len(ev.tasks) * (ev.task_limit or TASK_ITEMS) * ZERO_SHOT_TOKENS
    evaluation = 2 * sh.params * eval_tokens * (2 if ev.dense else 1)
    return (START_SECONDS["cuda" if device == "cuda" else "cpu"] + (forward + evaluation) * rates["forward"]
            + solve * rates.get(job.spec.method, rates["alps"]))


def seconds_range(needs: Needs) -> tuple[float, float]:
    low, high = SPREAD[needs.device]
    return needs.seconds * low, needs.seconds * high


def fits(needs: Needs, host_memory: int, gpu_memory: int | None) -> bool:
    """Whether a worker with these memories can run the job (the GPU also holds the CUDA context)."""
    if needs.host_bytes > host_memory:
        return False
    return needs.gpu_bytes is None or (gpu_memory is not None and needs.gpu_bytes + CUDA_CONTEXT_BYTES <= gpu_memory)
