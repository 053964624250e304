# The orchestrator (FastAPI under uvicorn) and, with another command, the ticket worker:
#   docker build -f deploy/docker/orchestrator.Dockerfile -t support/orchestrator .
#   serve:  (default)                 python -m orchestrator serve
#   worker: command override          python -m orchestrator worker
# No secret is baked in: DATABASE_URL and ORCHESTRATOR_ADMIN_KEY come from the environment.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtual environment with every dependency, compiled where needed ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # llama-cpp-python compiles from source; native flags would tie the image to this CPU.
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
# Unpinned on purpose: Debian's current security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU index: left to the project's requirements, pip would pull the
# CUDA build (gigabytes of libraries the orchestrator never uses).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
# The project's dependencies only (the source is copied as files below, so that the data
# files it reads beside the code stay where `orchestrator.settings.PROJECT_ROOT` expects them).
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /src/requirements.txt \
    && pip install -r /src/requirements.txt

# ---- runtime: the environment, the code, an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
# libgomp: OpenMP for onnxruntime and llama.cpp.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 support \
    && useradd --system --uid 10001 --gid support --home-dir /app --shell /usr/sbin/nologin support
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root orchestrator/ orchestrator/
COPY --chown=root:root export/ export/
COPY --chown=root:root llm_engine/ llm_engine/
COPY --chown=root:root data/ data/
COPY --chown=root:root alembic.ini pyproject.toml ./
# Byte-code compiled now: the root filesystem is read-only in Kubernetes.
RUN /opt/venv/bin/python -m compileall -q orchestrator export llm_engine
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    ORCHESTRATOR_HOST=0.0.0.0 \
    ORCHESTRATOR_PORT=8080
USER 10001:10001
EXPOSE 8080 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORCHESTRATOR_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["python", "-m", "orchestrator"]
CMD ["serve"]
