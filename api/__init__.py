"""Topiary REST API (FastAPI). Never imports torch or pruning_core: jobs are enqueued by task name."""
