"""Calibration and evaluation text, read from a local data directory.

The directory is `TOPIARY_DATA_DIR`, else `../shared/data` next to the project root (or the
current directory) when it exists. With a network, `allow_download=True` falls back to the usual
Hugging Face datasets; without it a missing file is a `DataNotFound` that names the file.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import DataNotFound, SpecError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# dataset -> (file relative to the data dir, hub fallback (path, name, split, field))
EVAL_FILES = {
    "wikitext2": ("wikitext-2-raw/wiki.test.raw", ("wikitext", "wikitext-2-raw-v1", "test", "text")),
    "ptb": ("ptb/ptb.test.txt", ("ptb_text_only", "penn_treebank", "test", "sentence")),
    "c4": ("c4/c4_validation_2k.parquet", ("allenai/c4", None, "validation", "text")),
}
# calibration never reads a test split: WikiText-2 calibrates on its validation split here
# (the train split is not shipped), C4 on the validation sample, PTB on its train split.
CALIB_FILES = {
    "wikitext2": ("wikitext-2-raw/wiki.valid.raw", ("wikitext", "wikitext-2-raw-v1", "validation", "text")),
    "ptb": ("ptb/ptb.train.txt", ("ptb_text_only", "penn_treebank", "train", "sentence")),
    "c4": EVAL_FILES["c4"],
}


def data_dir() -> Path:
    """The configured data directory (it may not exist; readers report the missing file)."""
    env = os.environ.get("TOPIARY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    for base in (PROJECT_ROOT, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return (PROJECT_ROOT / ".." / "shared" / "data").resolve()


def _read_local(rel: str, root: Path | None) -> list[str] | None:
    """Documents of a local file: one per line for .txt/.raw as a single text, rows for parquet."""
    path = (root or data_dir()) / rel
    if not path.is_file():
        return None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [str(t) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()]
    return [path.read_text(encoding="utf-8")]


def _read_hub(spec: tuple) -> list[str]:
    from datasets import load_dataset  # optional dependency, only with a network

    path, name, split, column = spec
    if path == "allenai/c4":
        ds = load_dataset(path, data_files={"validation": "en/c4-validation.00000-of-00008.json.gz"}, split=split)
        return list(ds[column][:2000])
    ds = load_dataset(path, name, split=split)
    return ["\n\n".join(ds[column])] if path == "wikitext" else [" ".join(s.strip() for s in ds[column])]


def _documents(table: dict, dataset: str, root: Path | None, allow_download: bool) -> list[str]:
    if dataset not in table:
        raise SpecError(f"unknown dataset {dataset!r}; choose from {', '.join(table)}", "dataset")
    rel, hub = table[dataset]
    docs = _read_local(rel, root)
    if docs is not None:
        return docs
    if allow_download:
        return _read_hub(hub)
    raise DataNotFound(
        f"missing data file {(root or data_dir()) / rel} (set TOPIARY_DATA_DIR, or allow downloads to fetch {hub[0]})",
        "dataset",
    )


def check_available(table: dict, dataset: str, root: Path | None, allow_download: bool) -> None:
    """Raise what `_documents` would, without reading the file: for checks before a model loads."""
    rel, hub = table[dataset]
    if not ((root or data_dir()) / rel).is_file() and not allow_download:
        raise DataNotFound(
            f"missing data file {(root or data_dir()) / rel} (set TOPIARY_DATA_DIR, or allow downloads to fetch {hub[0]})",
            "dataset")


def check_calibration_source(source: str, root: Path | None, allow_download: bool) -> None:
    """What `calibration_ids` would refuse about its source, without reading the text."""
    if source in CALIB_FILES:
        check_available(CALIB_FILES, source, root, allow_download)
    else:
        _calibration_file(Path(source).expanduser())


def eval_text(dataset: str, root: Path | None = None, allow_download: bool = False) -> str:
    """The evaluation text, GPTQ-style: WikiText-2 test as is, PTB test lines joined with a space
    (each line stripped), the C4 sample's documents joined with a space."""
    docs = _documents(EVAL_FILES, dataset, root, allow_download)
    if dataset == "ptb":
        return " ".join(line.strip() for line in docs[0].splitlines())
    return docs[0] if len(docs) == 1 else " ".join(docs)


def _file_documents(path: Path) -> list[str]:
    """A user's calibration file: .jsonl (one {"text": ...} per line) or plain text (one stream)."""
    _calibration_file(path)
    if path.suffix == ".jsonl":
        docs = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    docs.append(str(json.loads(line)["text"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise SpecError(f"{path}:{lineno}: expected a JSON object with a 'text' field", "calibration.source") from exc
        return docs
    return [path.read_text(encoding="utf-8")]


# plain text (one stream) or .jsonl; an uploaded dataset is stored without a suffix
CALIB_FILE_SUFFIXES = (".jsonl", ".txt", ".raw", ".text", "")


def _calibration_file(path: Path) -> None:
    """The one rule for a calibration file: it exists and has a suffix we read."""
    if not path.is_file():
        raise DataNotFound(f"calibration file not found: {path}", "calibration.source")
    if path.suffix not in CALIB_FILE_SUFFIXES:
        raise SpecError(f"calibration file must be .txt or .jsonl, got {path.name}", "calibration.source")


def sample_windows(docs: list[str], tokenize: Callable[[str], list[int]], nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    """Draw `nsamples` windows of `seqlen` tokens: pick a random document, skip it unless it has
    more than `seqlen` tokens, take a random window in it (benchmarks.md). A single long text
    (WikiText, a .txt file) is one document. Returns int64 [nsamples, seqlen]."""
    rng = random.Random(seed)  # same draws as random.seed(seed) without touching global state
    cache: dict[int, list[int]] = {}
    samples = []
    attempts = 0
    while len(samples) < nsamples:
        attempts += 1
        if attempts > 50 * nsamples + 1000:
            raise SpecError(f"calibration text has too few documents longer than {seqlen} tokens", "calibration.seqlen")
        i = rng.randint(0, len(docs) - 1)
        if i not in cache:
            cache[i] = tokenize(docs[i])
        ids = cache[i]
        if len(ids) <= seqlen:
            continue
        j = rng.randint(0, len(ids) - seqlen - 1)
        samples.append(ids[j : j + seqlen])
    return torch.tensor(samples, dtype=torch.long)


def calibration_ids(source: str, tokenize: Callable[[str], list[int]], nsamples: int, seqlen: int, seed: int,
                    root: Path | None = None, allow_download: bool = False) -> torch.Tensor:
    """Calibration token ids [nsamples, seqlen] from a named dataset or a .txt/.jsonl file."""
    if source in CALIB_FILES:
        docs = _documents(CALIB_FILES, source, root, allow_download)
    else:
        docs = _file_documents(Path(source).expanduser())
    if not docs:
        raise SpecError(f"calibration source {source} is empty", "calibration.source")
    return sample_windows(docs, tokenize, nsamples, seqlen, seed)
