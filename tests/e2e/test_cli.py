"""`topiary prune` as a user runs it: real processes, the real tokenizer, real data files."""

import json
import subprocess
import sys

import pytest
import torch

from pruning_core.export import load_masks

CLI = [sys.executable, "-m", "topiary.cli"]


def topiary(*args, env=None, timeout=600):
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_help_documents_every_option():
    out = topiary("prune", "--help").stdout
    for flag in ["--model", "--method", "--sparsity", "--pattern", "--calib", "--nsamples", "--seqlen", "--seed",
                 "--eval", "--eval-limit", "--device", "--out", "--option", "--sparsity-profile", "--owl-m",
                 "--owl-lambda", "--sparsity-rule"]:
        assert flag in out, flag


BAD_INPUT = [  # (arguments, what the one line must say): every case the issue lists, and the classics
    (["--sparsity", "1.0"], "sparsity: must be a number in [0, 1)"),
    (["--sparsity", "-0.2"], "sparsity: must be a number in [0, 1)"),
    (["--sparsity", "half"], "--sparsity"),
    (["--pattern", "4:4"], "0 < N < M"),
    (["--pattern", "2:4", "--sparsity", "0.7"], "contradicts"),
    (["--method", "pruneit"], "unknown method"),
    (["--model", "no-such-model"], "unknown model"),
    (["--eval", "imagenet"], "unknown dataset 'imagenet'"),
    (["-o", "blocksize"], "KEY=VALUE"),
    (["--method", "alps", "-o", "rho0=abc"], "options.rho0: must be a finite number"),
    (["--method", "alps", "-o", "max_iter=1.5"], "options.max_iter: must be an integer"),
    (["--method", "alps", "-o", "refit=maybe"], "options.refit: must be a boolean"),
    (["--method", "sparsegpt", "-o", "percdamp=-1"], "options.percdamp: must be 0 <= percdamp"),
    (["--method", "wanda", "-o", "blocksize=64"], "method wanda has no option 'blocksize'"),
    (["--method", "wanda", "--quantize", "int4"], "method wanda has no joint quantization"),
    (["--device", "tpu"], "device: must be auto, cpu, cuda or cuda:N"),
    (["--eval-seqlen", "5000000"], "evaluation.seqlen: must be in 8..32768"),
    (["--calib", "/nonexistent/calib.txt"], "calibration file not found"),
    (["--model", "someorg/not-cached-model"], "not in the local Hugging Face cache"),
    (["--model", "/nonexistent/model-dir"], "unknown model"),
    (["--sparsity-profile", "owl", "--owl-lambda", "0.7"], "sparsity_profile.owl_lambda: must be a number in [0, 0.5]"),
    (["--sparsity-profile", "wavy"], "sparsity_profile.kind: unknown profile 'wavy'"),
    (["--owl-m", "4"], "--owl-m and --owl-lambda need --sparsity-profile owl"),
    (["--sparsity-rule", "(q=0"], "sparsity_profile.rules[0].match: does not compile"),
    (["--sparsity-rule", "mlp"], "--sparsity-rule expects REGEX=SPARSITY"),
    (["--sparsity-rule", r"layers\.77\.=0"], "sparsity_profile.rules[0].match: 'layers\\.77\\.' matches no prunable layer"),
    (["--sparsity", "0.7", "--sparsity-rule", "mlp=0"], "the target cannot be reached with these rules"),
    (["--pattern", "2:4", "--sparsity-profile", "owl"], "sparsity_profile.kind: owl varies sparsity per layer"),
    (["--method", "wanda", "--dense-target", "0.3"], "dense_target: method wanda reconstructs nothing"),
    (["--method", "alps", "--dense-target", "2"], "dense_target: must be a number in [0, 1]"),
    (["--quantized-format", "dense"], "quantize.format: needs quantization"),
    (["--method", "sparsegpt", "--quantize", "int4", "--group-size", "100"], "quantize.group_size: 100 does not divide"),
    (["--sweep", "0.4"], "sweep: must be a list of 2 to 16"),
    (["--sweep", "0.4,0.5", "--sparsity", "0.6"], "sweep: give the settings in sweep alone"),
    (["--gate", "max_ppl_ratio=x"], "--gate: expected NAME=NUMBER"),
    (["--gate", "max_ppl_ratio=0.5"], "gates.max_ppl_ratio: must be >= 1"),
    (["--gate", "max_regression=0.02", "--eval", "wikitext2"], "--gate max_regression needs --baseline"),
    (["--gate", "max_ppl=50"], "gates.max_ppl: needs a perplexity dataset"),
]


@pytest.mark.parametrize("args,needle", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_before_the_model_loads(tmp_path, args, needle):
    proc = topiary("prune", "--out", str(tmp_path / "o"), *args, env={"HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("topiary: error:"), proc.stderr
    assert "[loading]" not in proc.stderr  # the one line is all: no stage began, no weights were read
    assert not (tmp_path / "o").exists()


def test_out_naming_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = topiary("prune", "--out", str(tmp_path / "afile"), timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == \
        f"topiary: error: output {tmp_path / 'afile'} is a file; name a new or empty directory"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_bad_gpu_list_is_one_line(command):
    proc = topiary(command, "--gpus", "a,b", timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == "topiary: error: --gpus expects indices like 0,1; got 'a,b'"


def test_methods_lists_the_registry():
    from pruning_core.spec import DECLARED

    listed = json.loads(topiary("methods", "--json").stdout)
    assert [m["name"] for m in listed] == list(DECLARED)
    assert listed == [m.describe() for m in DECLARED.values()]


def test_missing_data_and_busy_output(tmp_path, tiny_model_dir):
    empty = tmp_path / "nodata"
    empty.mkdir()
    proc = topiary("prune", "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--nsamples", "2",
                   "--seqlen", "16", env={"TOPIARY_DATA_DIR": str(empty)})
    assert proc.returncode == 2 and "c4_validation_2k.parquet" in proc.stderr and "Traceback" not in proc.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep me")
    proc = topiary("prune", "--model", str(tiny_model_dir), "--out", str(busy))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (busy / "x").read_text() == "keep me"


def reload_and_check(out, windows, seqlen, dataset="wikitext2"):
    """Reload model/ with transformers: zeros match masks.safetensors and the perplexity
    reproduces the report's figure."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pruning_core import data
    from pruning_core.evaluate import perplexity

    report = json.loads((out / "report.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(out / "model")
    # the forward pass first: a packed (compressed-tensors) checkpoint decompresses its layers on it
    ids = tok(data.eval_text(dataset), return_tensors="pt").input_ids[0]
    ppl, used = perplexity(model, ids, seqlen, windows)
    assert used == report["perplexity"][dataset]["windows"]
    assert ppl == pytest.approx(report["perplexity"][dataset]["pruned"], rel=1e-4)
    masks = load_masks(out / "masks.safetensors")
    assert set(masks) == {layer["name"] for layer in report["layers"]}
    modules = dict(model.named_modules())
    for name, keep in masks.items():
        W = modules[name].weight
        assert torch.equal(W == 0, ~keep) or torch.all(W[~keep] == 0), name
    return report


def test_tiny_model_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    proc = topiary("prune", "--model", str(tiny_model_dir), "--method", "sparsegpt", "--pattern", "2:4",
                   "--nsamples", "4", "--seqlen", "32", "--eval", "wikitext2", "--eval-limit", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "pruned" in proc.stdout and str(out) in proc.stdout
    report = reload_and_check(out, windows=3, seqlen=32)
    for key in ["method", "pattern", "sparsity_target", "sparsity_achieved", "calibration", "perplexity", "layers",
                "seconds_total", "device", "versions"]:
        assert key in report
    assert report["pattern"] == "2:4" and report["sparsity_achieved"] == pytest.approx(0.5)
    assert report["calibration"] == {"source": "c4", "nsamples": 4, "seqlen": 32, "seed": 0}
    assert set(report["versions"]) >= {"torch", "transformers", "topiary"}
    assert all({"name", "sparsity", "rel_error", "seconds"} <= set(layer) for layer in report["layers"])


def test_sweep_and_gates_end_to_end(tmp_path, tiny_model_dir):
    """A sweep prints its curve and writes a checkpoint per point; a broken gate exits 3 after the
    work is written; a regression gate against an identical run passes."""
    common = ["--model", str(tiny_model_dir), "--method", "magnitude", "--eval", "wikitext2", "--eval-limit", "2",
              "--seqlen", "32"]
    proc = topiary("prune", *common, "--sweep", "0.3,2:4", "--out", str(tmp_path / "sweep"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "sweep" / "report.json").read_text())
    assert [p["setting"] for p in report["points"]] == ["0.3", "2:4"]
    assert f"{tmp_path / 'sweep'}/points/2-of-4/model" in proc.stdout
    assert (tmp_path / "sweep" / "points" / "0.3" / "model" / "config.json").exists()

    proc = topiary("prune", *common, "--gate", "max_ppl=1", "--out", str(tmp_path / "gated"))
    assert proc.returncode == 3, proc.stderr
    assert "gate        FAIL  max_ppl on wikitext2:" in proc.stdout
    assert (tmp_path / "gated" / "model" / "config.json").exists()  # the work is kept
    proc = topiary("prune", *common, "--gate", "max_regression=0", "--baseline", str(tmp_path / "gated" / "report.json"),
                   "--out", str(tmp_path / "again"))
    assert proc.returncode == 0, proc.stderr
    assert "gate        pass  max_regression on wikitext2: 0 meets" in proc.stdout


def test_owl_profile_end_to_end(tmp_path, tiny_model_dir):
    """The issue's command, on the tiny model: ALPS at 70% with OWL and a rule."""
    out = tmp_path / "run"
    proc = topiary("prune", "--model", str(tiny_model_dir), "--method", "alps", "--sparsity", "0.7",
                   "--sparsity-profile", "owl", "--sparsity-rule", r"layers\.1\.mlp\.down=0.5",
                   "--nsamples", "4", "--seqlen", "32", "--out", str(out), "-o", "max_iter=20")
    assert proc.returncode == 0, proc.stderr
    assert "profile     owl (M 5, lambda 0.08), 1 rule(s): layer targets" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity_profile"]["kind"] == "owl" and report["sparsity_achieved"] == pytest.approx(0.7, abs=1e-4)
    down = next(layer for layer in report["layers"] if layer["name"] == "model.layers.1.mlp.down_proj")
    assert down["target"] == pytest.approx(0.5) and down["sparsity"] == pytest.approx(0.5)
    masks = load_masks(out / "masks.safetensors")
    for layer in report["layers"]:
        assert float((~masks[layer["name"]]).float().mean()) == pytest.approx(layer["target"], abs=1e-6)


def test_zero_shot_tasks_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "zs"
    proc = topiary("prune", "--model", str(tiny_model_dir), "--method", "alps", "--nsamples", "4", "--seqlen", "32",
                   "--tasks", "piqa,lambada_openai", "--task-limit", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["perplexity"] == {}  # no --eval: zero-shot only
    zs = report["zero_shot"]
    assert list(zs) == ["piqa", "lambada_openai"] and all(z["docs"] == 4 for z in zs.values())
    assert set(zs["piqa"]["dense"]) == set(zs["piqa"]["pruned"]) == {"acc", "acc_norm", "docs"}
    assert all(0 <= z["pruned"]["acc"] <= 1 for z in zs.values())
    assert "piqa        acc_norm dense" in proc.stdout and "(4 items)" in proc.stdout
    bad = topiary("prune", "--tasks", "piqa,mmlu", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "unknown zero-shot task 'mmlu'" in bad.stderr


@pytest.mark.slow
def test_bundled_model_sparsegpt(tmp_path, smol_dir):
    """The issue's acceptance command, with a small calibration set to stay fast on 2 cores."""
    out = tmp_path / "smol"
    proc = topiary("prune", "--model", "smollm2-135m", "--method", "sparsegpt", "--sparsity", "0.5",
                   "--nsamples", "8", "--seqlen", "128", "--eval", "wikitext2", "--eval-limit", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = reload_and_check(out, windows=4, seqlen=128)
    ppl = report["perplexity"]["wikitext2"]
    assert len(report["layers"]) == 30 * 7
    assert report["sparsity_achieved"] == pytest.approx(0.5, abs=1e-4)
    # a working SparseGPT at 50% costs some perplexity, not orders of magnitude
    assert ppl["dense"] < ppl["pruned"] < 4 * ppl["dense"]


def test_pgz_with_int4_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "pgz"
    proc = topiary("prune", "--model", str(tiny_model_dir), "--method", "pgz", "--pattern", "2:4", "--quantize", "int4",
                   "--sparsity-rule", r"layers\.1\.self_attn\.o_proj=0",  # N:M takes rules that leave a layer dense
                   "--nsamples", "4", "--seqlen", "32", "--eval", "wikitext2", "--eval-limit", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = reload_and_check(out, windows=2, seqlen=32)
    q = report["quantization"]
    assert q["bits"] == 4 and q["mask_bits_per_weight"] == pytest.approx(0.646, abs=1e-3) and q["dense_layers"] == 1
    # 4 bits on half the weights plus 24 grid bits per row of 64 or 128 inputs
    assert 2 + 24 / 128 <= q["bits_per_weight"] <= 2 + 24 / 64 and "bits/weight" in proc.stdout
    assert "checkpoint  packed (compressed-tensors)" in proc.stdout
    # packed by default: compressed-tensors int4 codes, scales and zero points, which transformers reads
    config = json.loads((out / "model" / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "pack-quantized"
    assert sorted(config["ignore"]) == ["lm_head", "model.layers.1.self_attn.o_proj"]
    stored = q["checkpoint"]
    assert stored["format"] == "packed" and stored["quantized_layers"] == 13 and stored["ratio_to_bf16"] <= 0.3
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    shard = next((out / "model").glob("model-00001-*.safetensors"))
    with safe_open(str(shard), framework="pt") as f:
        assert "model.layers.0.mlp.down_proj.weight_packed" in f.keys()
        assert "model.layers.0.mlp.down_proj.weight" not in f.keys()
    model = AutoModelForCausalLM.from_pretrained(out / "model", quantization_config=CompressedTensorsConfig(dequantize=True))
    W = model.model.layers[0].mlp.down_proj.weight  # every kept weight decodes to one of 16 levels per row
    assert all(len(torch.unique(row)) <= 16 for row in W)
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # the dense rule's layer: untouched
    assert torch.equal(model.model.layers[1].self_attn.o_proj.weight, source.model.layers[1].self_attn.o_proj.weight)


def test_quantize_rejected_for_methods_without_it(tmp_path):
    proc = topiary("prune", "--method", "wanda", "--quantize", "int4", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no joint quantization" in proc.stderr


def test_keys_list_and_revoke(tmp_path):
    import os

    env = {**{k: v for k, v in os.environ.items() if k != "TOPIARY_DATABASE_URL"}, "TOPIARY_HOME": str(tmp_path)}
    run = lambda *args: subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)
    key = run("keys", "create", "--tenant", "acme").stdout.strip()
    run("keys", "create", "--tenant", "other")
    prefix = "_".join(key.split("_")[:2])
    listed = run("keys", "list", "--tenant", "acme").stdout.strip().splitlines()
    assert len(listed) == 1 and listed[0].split("\t")[1:4] == ["acme", prefix, "jobs:read,jobs:write"]
    assert key.split("_", 2)[2] not in listed[0]  # the secret is never shown again
    assert listed[0].endswith("revoked -")
    assert run("keys", "revoke", prefix).returncode == 0
    assert "revoked -" not in run("keys", "list", "--tenant", "acme").stdout
    assert len(run("keys", "list").stdout.strip().splitlines()) == 2
    missing = run("keys", "revoke", "tpk_nothere")
    assert missing.returncode == 2 and missing.stderr.strip() == "topiary: error: no API key 'tpk_nothere'"
