"""The model repository's contract: model names, versions and the files export generates."""

from pathlib import Path

from contracts.credit import CREDIT_MODELS
from contracts.versions import BASE_VERSION, versioned_model_name
from contracts.xray import XRAY_MODELS

# ticket_intent is the three others fused into one ONNX file (export/fuse.py): the ensemble's
# one step, so a request makes one trip between Triton's processes instead of three. The three
# stay served: drift reads the encoder's embeddings, and a GPU host may chain them instead.
TRIAGE_MODELS = (
    "ticket_tokenizer",
    "ticket_encoder",
    "ticket_classifier",
    "ticket_intent",
    "ticket_triage",
)
LLM_MODEL = "llm"
# The same model code with a smaller KV cache: chat and drafts fail over to it (the
# orchestrator's ORCHESTRATOR_LLM_PRIMARY / ORCHESTRATOR_LLM_FALLBACK choose the roles).
LLM_FALLBACK_MODEL = "llm_fallback"
# max_batch_size of ticket_triage and of each of its steps (their config.pbtxt): the most
# texts one triage call may carry.
TRIAGE_MAX_BATCH = 64
# The chest x-ray models (contracts/xray.py) and the credit models (contracts/credit.py) are
# served beside them.
SERVED_MODELS = (*TRIAGE_MODELS, *XRAY_MODELS, *CREDIT_MODELS, LLM_MODEL, LLM_FALLBACK_MODEL)

# The longest text triage takes, in UTF-8 bytes: /v1/triage refuses longer texts (422), tickets'
# texts are cut to it at a character boundary, and ticket_tokenizer refuses longer ones (its
# config.pbtxt `max_text_bytes` holds the same number, since Triton's Python cannot import this
# package; tests/model_repository/test_model_repository.py keeps the two equal). The encoder
# reads only the first 128 tokens, so nothing it would read is ever cut.
MAX_TEXT_BYTES = 16_384

# Tokens the served models read of a text (ticket_tokenizer's max_sequence_length, the fused
# ticket_intent's cut); training reads fewer (export's --max-length, 64).
SERVED_MAX_TOKENS = 128

# ticket_encoder's numbered versions
ENCODER_VERSIONS = {"fp32": "1", "int8": "2"}

# Served triage versions (the MLOps loop), laid out as contracts/versions.py says. Triage
# version v is ticket_classifier's version v with the INT8 encoder version its model card names;
# version 1 is what `export build` writes, served by `ticket_triage`; `python -m export publish`
# writes the others' ensembles, `ticket_triage_v<v>`.
BASE_TRIAGE_VERSION = BASE_VERSION
TRIAGE_ENSEMBLE = "ticket_triage"


def triage_model_name(version: int) -> str:
    """The ensemble that serves triage version `version`."""
    return versioned_model_name(TRIAGE_ENSEMBLE, version)


# Every file the triage ensemble needs that the export step generates (relative to the repository).
TOKENIZER_FILE = "ticket_tokenizer/1/tokenizer.json"
ENCODER_FILES = {p: f"ticket_encoder/{v}/model.onnx" for p, v in ENCODER_VERSIONS.items()}
CLASSIFIER_FILE = "ticket_classifier/1/model.onnx"
INTENT_MODEL = "ticket_intent"
INTENT_FILE = f"{INTENT_MODEL}/1/model.onnx"  # version v: triage version v, fused
GENERATED_FILES = (
    TOKENIZER_FILE,
    ENCODER_FILES["fp32"],
    ENCODER_FILES["int8"],
    CLASSIFIER_FILE,
    INTENT_FILE,
)


def missing_files(repository: Path) -> list[str]:
    """Generated files the repository still lacks (empty when it is built)."""
    return [name for name in GENERATED_FILES if not (repository / name).is_file()]
