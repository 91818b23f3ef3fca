"""Zero-shot accuracy the way lm-evaluation-harness computes it, on local task files.

Every task is a list of items; an item is one context per choice (or one shared context) and one
continuation per choice. The model scores each (context, continuation) pair by the summed
log-probability of the continuation's tokens; the answer is the argmax (`acc`), or the argmax of
the log-probability per character of the choice (`acc_norm`, where the harness reports it). LAMBADA instead asks whether greedy
decoding reproduces the last word (`acc`). Prompts follow the harness's task definitions, so the
numbers are comparable with what users get from `lm_eval --tasks ...` (with its default 0 shots).

Files live under `<data dir>/tasks/` (see ../shared/data/SOURCES.md for where each came from).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import SpecError
from .evaluate import map_batches


@dataclass(frozen=True)
class Item:
    contexts: tuple[str, ...]  # one per choice, or a single context shared by all choices
    continuations: tuple[str, ...]  # one per choice
    gold: int

    def requests(self) -> list[tuple[str, str]]:
        ctx = self.contexts if len(self.contexts) > 1 else self.contexts * len(self.continuations)
        return list(zip(ctx, self.continuations))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _labels(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


def _arc_like(prompt: Callable[[str], str]):
    """ARC and OpenBookQA: choices {text, label}; the gold is the position of answerKey."""
    def load(path: Path) -> list[Item]:
        items = []
        for d in _jsonl(path):
            q = d["question"]
            labels = [c["label"] for c in q["choices"]]
            items.append(Item((prompt(q["stem"]),), tuple(" " + c["text"] for c in q["choices"]),
                              labels.index(d["answerKey"])))
        return items
    return load


def _piqa(path: Path) -> list[Item]:
    gold = _labels(path.with_name("valid-labels.lst"))
    return [Item((f"Question: {d['goal']}\nAnswer:",), (" " + d["sol1"], " " + d["sol2"]), g)
            for d, g in zip(_jsonl(path), gold, strict=True)]


def _boolq(path: Path) -> list[Item]:
    return [Item((f"{d['passage']}\nQuestion: {d['question']}?\nAnswer:",), (" no", " yes"), int(d["answer"]))
            for d in _jsonl(path)]


def _rte(path: Path) -> list[Item]:
    return [Item((f"{d['premise']}\nQuestion: {d['hypothesis']} True or False?\nAnswer:",), (" True", " False"),
                 0 if d["label"] == "entailment" else 1) for d in _jsonl(path)]


def _hellaswag(path: Path) -> list[Item]:
    """llama.cpp's text form: per item a context line, the gold index and four endings (already
    cleaned the harness's way: no [title]/[step] markers, no double spaces)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Item((lines[i],), tuple(" " + e for e in lines[i + 2 : i + 6]), int(lines[i + 1]))
            for i in range(0, len(lines) - 5, 6)]


def _winogrande(path: Path) -> list[Item]:
    """Partial scoring: each option fills the blank in the context; the shared continuation is
    what follows the blank."""
    items = []
    for d in _jsonl(path):
        blank = d["sentence"].index("_")
        contexts = (d["sentence"][:blank] + d["option1"], d["sentence"][:blank] + d["option2"])
        items.append(Item(contexts, (" " + d["sentence"][blank + 1 :].strip(),) * 2, int(d["answer"]) - 1))
    return items


def _lambada(path: Path) -> list[Item]:
    items = []
    for d in _jsonl(path):
        context, word = d["text"].rsplit(" ", 1)
        items.append(Item((context,), (" " + word,), 0))
    return items


@dataclass(frozen=True)
class Task:
    file: str  # relative to the data directory
    load: Callable[[Path], list[Item]]
    norm: bool = False  # also report acc_norm (the harness does for ARC, OpenBookQA, PIQA, HellaSwag)
    greedy: bool = False  # LAMBADA: accuracy = greedy decoding reproduces the continuation


TASKS: dict[str, Task] = {
    "arc_easy": Task("tasks/arc_easy/ARC-Easy-Test.jsonl", _arc_like(lambda s: f"Question: {s}\nAnswer:"), norm=True),
    "arc_challenge": Task("tasks/arc_challenge/ARC-Challenge-Test.jsonl", _arc_like(lambda s: f"Question: {s}\nAnswer:"), norm=True),
    "openbookqa": Task("tasks/openbookqa/test.jsonl", _arc_like(lambda s: s), norm=True),
    "piqa": Task("tasks/piqa/valid.jsonl", _piqa, norm=True),
    "boolq": Task("tasks/boolq/dev.jsonl", _boolq),
    "rte": Task("tasks/rte/val.jsonl", _rte),
    "hellaswag": Task("tasks/hellaswag/hellaswag_val_full.txt", _hellaswag, norm=True),
    "winogrande": Task("tasks/winogrande/dev.jsonl", _winogrande),
    "lambada_openai": Task("tasks/lambada_openai/lambada_test.jsonl", _lambada, greedy=True),
}


def check_tasks(names) -> None:
    for name in names:
        if name not in TASKS:
            raise SpecError(f"unknown zero-shot task {name!r}; choose from {', '.join(TASKS)}", "tasks")


def load_items(name: str, root: Path | None = None, limit: int | None = None) -> list[Item]:
    """The first `limit` items of a task, from `root` (default: the data directory)."""
    return TASKS[name].load(task_file(name, root))[:limit]


def task_file(name: str, root: Path | None = None) -> Path:
    """The task's data file, which must exist."""
    from .data import data_dir

    check_tasks([name])
    path = (root or data_dir()) / TASKS[name].file
    if not path.is_file():
        raise SpecError(f"missing task file {path} (set TOPIARY_DATA_DIR to a folder with tasks/)", "tasks")
    return path


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The harness's split: trailing spaces of the context move to the continuation, the pair is
    encoded whole and the context's own tokens are cut off the front (no special tokens)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    return whole[: len(ctx)], whole[len(ctx) :]


def _plan(pairs: list[tuple[list[int], list[int]]], batch_size: int, max_length: int):
    """Batches of pair indices, longest first, with each pair's model input (context +
    continuation minus its last token, cut to the last `max_length` tokens) right-padded into
    one [b, width] id tensor per batch."""
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
    plan = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        seqs = [(pairs[i][0] + pairs[i][1])[-(max_length + 1) :][:-1] for i in chunk]
        ids = torch.zeros(len(seqs), max(len(s) for s in seqs), dtype=torch.long)  # [b, width]
        for row, s in enumerate(seqs):
            ids[row, : len(s)] = torch.tensor(s)
        plan.append((chunk, [len(s) for s in seqs], ids))
    return plan


@torch.no_grad()
def loglikelihoods(model, pairs: list[tuple[list[int], list[int]]], device, batch_size: int = 8,
                   max_length: int | None = None, blockwise: bool | None = None,
                   progress: Callable[[int, int], None] | None = None, source=None) -> list[tuple[float, bool]]:
    """(sum of log p(continuation | context), whether greedy decoding reproduces it) per pair.
    Pairs are batched longest first with right padding. No attention mask is needed: causal
    attention keeps every real position from seeing the padding after it, and positions count
    from 0 either way. Only the continuation positions go through the output head."""
    max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)
    plan = _plan(pairs, batch_size, max_length)
    head = model.get_output_embeddings()

    def score(m, ids: torch.Tensor, index: int) -> list[tuple[float, bool]]:
        chunk, lengths, _ = plan[index]
        hidden = m.base_model(input_ids=ids, use_cache=False).last_hidden_state  # [b, width, hidden]
        # the positions predicting each continuation, every row's at once through the head
        h = torch.cat([hidden[row, n - len(pairs[i][1]) : n] for row, (i, n) in enumerate(zip(chunk, lengths))])
        logp = torch.log_softmax(head(h).float(), dim=-1)  # [continuation tokens in the batch, vocab]
        target = torch.tensor([t for i in chunk for t in pairs[i][1]], device=logp.device)
        picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)  # [continuation tokens in the batch]
        hits = logp.argmax(dim=-1) == target
        out, at = [], 0
        for i in chunk:
            n = len(pairs[i][1])
            out.append((float(picked[at : at + n].sum()), bool(hits[at : at + n].all())))
            at += n
        return out

    scored = map_batches(model, [ids for _, _, ids in plan], device, score, blockwise, progress, source)
    out: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
    for (chunk, _, _), results in zip(plan, scored):
        for i, result in zip(chunk, results):
            out[i] = result
    return out


def choose(name: str, item: Item, scores: list[tuple[float, bool]]) -> dict:
    """One item's verdict from its choices' (log-likelihood, greedy) scores: `acc` (and `acc_norm`
    where the harness reports it) as booleans, with the picked choices."""
    task = TASKS[name]
    if task.greedy:
        return {"acc": scores[0][1]}
    n = len(item.continuations)
    pick = max(range(n), key=lambda j: scores[j][0])
    out = {"acc": pick == item.gold, "pick": pick}
    if task.norm:
        # the harness divides by the choice's length in characters, without the leading space
        per_char = [scores[j][0] / max(len(item.continuations[j]) - 1, 1) for j in range(n)]
        out["pick_norm"] = max(range(n), key=lambda j: per_char[j])
        out["acc_norm"] = out["pick_norm"] == item.gold
    return out


def score_items(model, tokenizer, items: list[Item], device, batch_size: int = 8, blockwise: bool | None = None,
                progress: Callable[[int, int], None] | None = None, source=None) -> list[list[tuple[float, bool]]]:
    """Every item's (log-likelihood, greedy) score per choice, computed on `device`."""
    pairs = [encode_pair(tokenizer, c, x) for it in items for c, x in it.requests()]
    scores = loglikelihoods(model, pairs, device, batch_size, blockwise=blockwise, progress=progress, source=source)
    out, k = [], 0
    for it in items:
        out.append(scores[k : k + len(it.continuations)])
        k += len(it.continuations)
    return out


def evaluate_task(model, tokenizer, name: str, items: list[Item], device, batch_size: int = 8,
                  blockwise: bool | None = None, progress: Callable[[int, int], None] | None = None,
                  source=None) -> dict:
    """acc (and acc_norm where the harness reports it) over `items`, computed on `device`."""
    scores = score_items(model, tokenizer, items, device, batch_size, blockwise, progress, source)
    verdicts = [choose(name, it, s) for it, s in zip(items, scores)]
    result = {"acc": sum(v["acc"] for v in verdicts) / len(items), "docs": len(items)}
    if TASKS[name].norm:
        result["acc_norm"] = sum(v["acc_norm"] for v in verdicts) / len(items)
    return result


def zero_shot(model, tokenizer, names, device, root: Path | None = None, limit: int | None = None,
              progress: Callable[[int, int], None] | None = None, blockwise: bool | None = None,
              source=None) -> dict[str, dict]:
    """Every task in `names` on `device`: the whole model there when it fits, else one block at
    a time (`blockwise` None: evaluate.map_batches decides by free memory). `progress(tasks done,
    tasks)` is also called after every batch, so a caller can stop between batches."""
    out = {}
    for done, name in enumerate(names):
        tick = progress and (lambda *_, d=done: progress(d, len(names)))
        if tick:
            tick()
        out[name] = evaluate_task(model, tokenizer, name, load_items(name, root, limit), device, blockwise=blockwise,
                                  progress=tick, source=source)
    return out
