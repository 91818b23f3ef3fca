"""Celery workers: take job ids from the broker and run pruning_core's pipeline on them.
Nothing here touches CUDA (or imports torch) in the worker's parent process."""
