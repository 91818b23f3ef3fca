"""Names the service accepts, kept torch-free for the API. tests/unit/test_catalog.py checks that
they match pruning_core's registries, so the two cannot drift apart."""

METHODS = ("magnitude", "wanda", "sparsegpt", "alps", "pgz")
QUANT_METHODS = ("sparsegpt", "pgz")
BUNDLED_MODELS = ("smollm2-135m",)
DTYPES = ("auto", "float32", "bfloat16", "float16")
EVAL_DATASETS = ("wikitext2", "ptb", "c4")
CALIB_DATASETS = ("c4", "wikitext2", "ptb")
ZERO_SHOT_TASKS = ("arc_easy", "arc_challenge", "openbookqa", "piqa", "boolq", "rte", "hellaswag", "winogrande",
                   "lambada_openai")
TASK_NAME = "topiary.run_prune_job"
