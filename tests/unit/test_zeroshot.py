"""Zero-shot scoring: batched log-likelihoods equal a plain forward pass, task files parse into
the harness's prompts, and the bundled model scores above chance."""

import pytest
import torch

from helpers import tiny_model
from pruning_core import SpecError, evaluate, models
from pruning_core.spec import EvalSpec
from pruning_core.zeroshot import TASKS, encode_pair, load_items, loglikelihoods, zero_shot

# item counts of the shipped files (../shared/data/SOURCES.md)
COUNTS = {"arc_easy": 2376, "arc_challenge": 1172, "openbookqa": 500, "piqa": 1838, "boolq": 3270, "rte": 277,
          "hellaswag": 10042, "winogrande": 1267, "lambada_openai": 5153}


def plain(model, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    full = torch.tensor([ctx + cont])
    logp = torch.log_softmax(model(input_ids=full[:, :-1]).logits[0, len(ctx) - 1 :].float(), dim=-1)  # [len(cont), V]
    target = torch.tensor(cont)
    return float(logp.gather(1, target.unsqueeze(1)).sum()), bool((logp.argmax(-1) == target).all())


@pytest.mark.parametrize("blockwise,group_bytes", [(False, None), (True, None), (True, 100_000)],
                         ids=["whole", "blockwise", "blockwise-in-groups"])
@pytest.mark.parametrize("arch", ["llama", "opt", "qwen2"])
def test_batched_loglikelihoods_equal_a_plain_forward(arch, blockwise, group_bytes, monkeypatch):
    """Right-padded batches, whole model or one block at a time (a model larger than the GPU;
    in several groups of batches when their hidden states would not fit in memory at once) give
    every pair what a forward pass over that pair alone gives."""
    if group_bytes:  # a few batches per group with the tiny models' hidden sizes
        monkeypatch.setattr(evaluate, "BLOCKWISE_GROUP_BYTES", group_bytes)
    model = tiny_model(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    pairs = [(torch.randint(0, 128, (int(a),), generator=g).tolist(), torch.randint(0, 128, (int(b),), generator=g).tolist())
             for a, b in torch.randint(1, 30, (11, 2), generator=g)]
    pairs.append(([5, 6, 7], [8]))  # one-token continuation
    with torch.no_grad():
        got = loglikelihoods(model, pairs, "cpu", batch_size=4, blockwise=blockwise)
        want = [plain(model, c, x) for c, x in pairs]
    for (lg, gg), (lw, gw) in zip(got, want):
        assert lg == pytest.approx(lw, rel=1e-4, abs=1e-4) and gg == gw
    after = model.state_dict()  # the block list is back in place, untouched
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", list(TASKS))
def test_task_files_parse(name):
    items = load_items(name)
    assert len(items) == COUNTS[name]
    assert all(0 <= it.gold < len(it.continuations) for it in items)
    assert all(c.startswith(" ") and len(c) > 1 for it in items for c in it.continuations)
    assert load_items(name, limit=5) == items[:5]


def test_prompts_follow_the_harness():
    wino = load_items("winogrande", limit=1)[0]  # "Sarah was a much better surgeon than Maria so _ always ..."
    assert wino.contexts == ("Sarah was a much better surgeon than Maria so Sarah", "Sarah was a much better surgeon than Maria so Maria")
    assert wino.continuations == (" always got the easier cases.",) * 2 and wino.gold == 1
    piqa = load_items("piqa", limit=1)[0]
    assert piqa.contexts[0].startswith("Question: How do I ready a guinea pig cage") and piqa.contexts[0].endswith("\nAnswer:")
    hella = load_items("hellaswag", limit=1)[0]
    assert hella.contexts == ("Roof shingle removal: A man is sitting on a roof. he",) and hella.gold == 3
    assert len(hella.continuations) == 4
    rte = load_items("rte", limit=1)[0]
    assert rte.contexts[0].endswith("Christopher Reeve had an accident. True or False?\nAnswer:") and rte.gold == 1
    assert all(it.gold == 0 and len(it.continuations) == 1 for it in load_items("lambada_openai", limit=20))


def test_unknown_task_is_a_spec_error():
    with pytest.raises(SpecError, match="unknown zero-shot task 'mmlu'"):
        EvalSpec(tasks=("mmlu",))
    with pytest.raises(SpecError, match="evaluation.task_limit"):
        EvalSpec(tasks=("piqa",), task_limit=0)


def test_trailing_space_moves_to_the_continuation(smol_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_dir)
    ctx, cont = encode_pair(tok, "Question: is it?\nAnswer: ", "yes")
    assert tok.decode(ctx) == "Question: is it?\nAnswer:" and tok.decode(cont) == " yes"


@pytest.mark.slow
def test_bundled_model_beats_chance(smol_dir):
    """SmolLM2-135M is well above chance on the easy tasks; a scoring bug (off-by-one position,
    wrong gold, shuffled batch) drops it to chance."""
    model, tok = models.load("smollm2-135m", "float32")
    res = zero_shot(model, tok, ["piqa", "arc_easy", "lambada_openai"], "cpu", limit=30)
    assert res["piqa"]["acc"] > 0.6 and res["arc_easy"]["acc"] > 0.35 and res["lambada_openai"]["acc"] > 0.2, res
    assert res["piqa"]["docs"] == 30 and "acc_norm" in res["piqa"] and "acc_norm" not in res["lambada_openai"]
