# The orchestrator (FastAPI under uvicorn) and, with another command, the ticket worker:
#   docker build -f deploy/docker/orchestrator.Dockerfile -t support/orchestrator .
#   serve:  (default)                 python -m orchestrator serve
#   worker: command override          python -m orchestrator worker
# No secret is baked in: DATABASE_URL and ORCHESTRATOR_ADMIN_KEY come from the environment.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtual environment with the orchestrator extra only ----
# No torch, llama.cpp, Locust or matplotlib: the API server and its worker run none of them.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The source goes to /app, where the runtime stage puts it too: the editable install points
# there, so that the data files read beside the code stay where `contracts.PROJECT_ROOT` says.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts/ contracts/
COPY orchestrator/ orchestrator/
RUN pip install -e ".[orchestrator]"

# ---- runtime: the environment, the code, an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 support \
    && useradd --system --uid 10001 --gid support --home-dir /app --shell /usr/sbin/nologin support
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root contracts/ contracts/
COPY --chown=root:root orchestrator/ orchestrator/
COPY --chown=root:root data/ data/
COPY --chown=root:root alembic.ini pyproject.toml ./
# Byte-code compiled now: the root filesystem is read-only in Kubernetes. The drift monitor's
# folder exists owned by the service's user, so that a volume mounted there is writable.
RUN /opt/venv/bin/python -m compileall -q contracts orchestrator \
    && mkdir -p /var/lib/support/monitoring && chown 10001:10001 /var/lib/support/monitoring
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    ORCHESTRATOR_HOST=0.0.0.0 \
    ORCHESTRATOR_PORT=8080
USER 10001:10001
EXPOSE 8080 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORCHESTRATOR_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["python", "-m", "orchestrator"]
CMD ["serve"]
