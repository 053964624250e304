"""`python -m export retrain`: train a candidate on a snapshot, gate it against production.

The steps, each announced as `== i/7 ...`:

1. read the snapshot (`python -m export dataset`'s folder; the newest one by default) into a
   Split with Banking77's intent order; the most recent fifth of the agents' corrections it
   used are held out of training and become an evaluation set of their own;
2.-4. fine-tune, export ONNX, check parity with PyTorch, quantize the encoder to INT8 (the
   steps `python -m export build` runs, from export/build.py);
5. run the candidate's fused file and production's (the production triage version's
   ticket_intent in the production repository: what Triton serves to production keys)
   in process on the frozen Banking77 test split and the held-out corrections, timing
   every batch;
6. the gate (export/gate.py): accuracy, per-intent recall, latency;
7. a candidate that passes is written into the candidates repository (`--output`,
   var/candidates by default, never the live model_repository) as the next numbered
   versions of the models that change: ticket_classifier `<c>/model.onnx` and
   ticket_encoder `<e>/model.onnx` (fp32) and `<e+1>/model.onnx` (INT8), numbered after
   every version in production and in the candidates repository; its model card is
   `ticket_classifier/<c>/model_card.json` (data hash, code version, recipe, metrics, the
   gate's result). A refused candidate writes no model files, only
   `refused/<time>-<data hash>.json` with the reasons, and the command exits 1.

Serving a passed candidate is `python -m export publish` (export/publish.py), then the control
plane (register, canary, promote). Production here is the triage version the orchestrator's
database records (export/production.py), not simply the highest version folders: published
candidates sit beside it. Not wired yet: the API job that runs this command.

Each run is recorded in MLflow (contracts/registry.py; `REGISTRY_ENABLED=false` turns it off):
the recipe, data hash, code version, the gate's metrics and the card or refusal report, and a
candidate that passed as a version of the registered model `ticket_triage` with the alias
`candidate`. A registry that cannot be reached costs the record only, never the candidate.
"""

import json
import random
import shutil
import subprocess  # nosec B404  # `git rev-parse HEAD` for the model card, fixed argv
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from contracts import PROJECT_ROOT
from contracts.models import INTENT_MODEL
from contracts.registry import RegistrySettings, log_training_run
from export.build import (
    BuildOptions,
    Steps,
    intent_predictions,
    onnx_predictions,
    train_and_export,
)
from export.data import Split, load_banking77
from export.dataset import dedupe_key, latest_snapshot, read_snapshot
from export.gate import HOLDOUT_FRACTION, TEST_SET, Evaluation, GateCriteria, GateResult, run_gate
from export.lexical import DEFAULT_LEXICAL, LexicalSettings
from export.production import production_files
from export.production import production_version as production_version_of
from export.repository import copy_into, write_text_whole
from export.rerank import DEFAULT_RERANK, RerankSettings
from export.settings import ExportSettings

CLASSIFIER, ENCODER = "ticket_classifier", "ticket_encoder"


@dataclass(frozen=True)
class RetrainOptions:
    snapshot: Path | None = None  # None: the newest under settings.datasets_dir
    production: Path | None = None  # None: settings.model_repository
    # The triage version to gate against; None: the one the orchestrator's database records
    production_version: int | None = None
    output: Path | None = None  # None: settings.candidates_dir
    epochs: int = 2
    train_per_label: int | None = None
    test_limit: int | None = None
    max_length: int = 64
    holdout_fraction: float = HOLDOUT_FRACTION
    shuffle_labels: bool = False  # train on permuted labels: a candidate the gate must refuse
    rerank: RerankSettings | None = DEFAULT_RERANK  # None: the head alone (export/rerank.py)
    lexical: LexicalSettings | None = DEFAULT_LEXICAL  # None: without it (export/lexical.py)
    criteria: GateCriteria = field(default_factory=GateCriteria)


@dataclass
class RetrainResult:
    passed: bool
    report: dict
    report_path: Path


def next_versions(*repositories: Path) -> dict[str, int]:
    """The classifier's and the encoder's next free version numbers across `repositories`."""
    return {
        model: 1 + max((v for r in repositories for v in _versions(r / model)), default=0)
        for model in (CLASSIFIER, ENCODER)
    }


def split_from_rows(rows, intents: list[str]) -> Split:
    index = {name: i for i, name in enumerate(intents)}
    unknown = sorted({r.category for r in rows} - index.keys())
    if unknown:
        raise ValueError(f"the snapshot has labels that are not Banking77 intents: {unknown[:5]}")
    return Split([r.text for r in rows], [index[r.category] for r in rows])


def held_out_corrections(manifest: dict, fraction: float) -> list[dict]:
    """The most recent `fraction` of the corrections the snapshot used (rounded down)."""
    used = sorted(
        manifest.get("corrections_used", []), key=lambda c: (c["created_at"], c["feedback_id"])
    )
    count = int(len(used) * fraction)
    return used[len(used) - count :] if count else []


def shuffled(split: Split, seed: int) -> Split:
    labels = list(split.labels)
    random.Random(seed).shuffle(labels)  # nosec B311  # a deliberately broken training set
    return Split(split.texts, labels)


def retrain(settings: ExportSettings, options: RetrainOptions) -> RetrainResult:
    torch.set_num_threads(settings.torch_threads)
    step = Steps(7)
    production_repository = options.production or settings.model_repository
    output = options.output or settings.candidates_dir
    production_version = options.production_version or production_version_of(settings.database_url)
    # fail before training, not after
    production = production_files(production_repository, production_version)
    data = load_banking77(settings.banking77_dir)
    folder = options.snapshot or latest_snapshot(settings.datasets_dir)

    step(f"reading the snapshot {folder}")
    rows, manifest = read_snapshot(folder)
    held_out = held_out_corrections(manifest, options.holdout_fraction)
    held_keys = {dedupe_key(c["text"]) for c in held_out}
    train_split = split_from_rows(
        [r for r in rows if dedupe_key(r.text) not in held_keys], data.intents
    )
    if options.train_per_label:
        train_split = train_split.head_per_label(options.train_per_label)
    if options.shuffle_labels:
        train_split = shuffled(train_split, settings.seed)
    # spread, not head: Banking77's test file is grouped by intent, and recall is gated per intent
    test_split = data.test.spread(options.test_limit)
    print(
        f"snapshot {manifest['content_hash'][:12]}: {len(rows)} rows; training on "
        f"{len(train_split)}{' with SHUFFLED labels' if options.shuffle_labels else ''}; "
        f"{len(held_out)} recent corrections held out; {len(test_split)} frozen test texts",
        flush=True,
    )

    build_options = BuildOptions(
        epochs=options.epochs,
        train_per_label=options.train_per_label,
        test_limit=options.test_limit,
        max_length=options.max_length,
        tensorrt=False,
        rerank=options.rerank,
        lexical=options.lexical,
    )
    exported = train_and_export(
        settings, build_options, train_split, test_split, data.intents, step
    )
    paths = exported.paths

    step(
        f"evaluating production ({INTENT_MODEL} {production[INTENT_MODEL][0]} in "
        f"{production_repository}) and the candidate, as they serve"
    )
    sets = {TEST_SET: (test_split.texts, [data.intents[i] for i in test_split.labels])}
    if held_out:
        sets["corrections"] = ([c["text"] for c in held_out], [c["category"] for c in held_out])
    served = {"production": production[INTENT_MODEL][1], "candidate": paths["intent"]}
    predictions = {
        (model, name): intent_predictions(intent, texts)
        for model, intent in served.items()
        for name, (texts, _) in sets.items()
    }
    # the fp32 encoder and the head, without the vote: for the report only
    predictions["candidate_fp32", TEST_SET] = onnx_predictions(
        paths["encoder_fp32"], paths["classifier"], exported.tokenizer, sets[TEST_SET][0]
    )
    evaluations = [
        Evaluation(
            name,
            truth,
            predictions["production", name].intents,
            predictions["candidate", name].intents,
        )
        for name, (_, truth) in sets.items()
    ]

    step("the gate: accuracy, per-intent recall, latency")
    gate = run_gate(
        evaluations,
        predictions["production", TEST_SET].batch_seconds,
        predictions["candidate", TEST_SET].batch_seconds,
        options.criteria,
    )
    fp32_truth = sets[TEST_SET][1]
    fp32_hits = zip(fp32_truth, predictions["candidate_fp32", TEST_SET].intents, strict=True)
    report = {
        "status": "passed" if gate.passed else "refused",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "data": {
            "snapshot": str(folder),
            "content_hash": manifest["content_hash"],
            "test_hash": manifest.get("banking77_test", {}).get("hash"),
            "train_texts": len(train_split),
            "held_out_corrections": [c["feedback_id"] for c in held_out],
            "shuffled_labels": options.shuffle_labels,
        },
        "recipe": asdict(build_options),
        "production": {
            "repository": str(production_repository),
            "triage_version": production_version,
            ENCODER: production[ENCODER][0],
            CLASSIFIER: production[CLASSIFIER][0],
        },
        "train": asdict(exported.train_report),
        "parity": asdict(exported.parity),
        "candidate_fp32_test_accuracy": round(
            sum(t == p for t, p in fp32_hits) / len(fp32_truth), 4
        ),
        "gate": gate.to_dict(),
    }
    _print_gate(gate)
    if gate.passed:
        step(f"writing the candidate into {output}")
        report_path = _write_candidate(output, production_repository, paths, report)
    else:
        step("refusing the candidate: no model files written")
        report_path = output / "refused" / f"{_stamp(report)}-{manifest['content_hash'][:12]}.json"
        _write_json(report_path, report)
    print(f"wrote {report_path}", flush=True)
    record_in_mlflow(settings.registry, report, report_path)
    return RetrainResult(gate.passed, report, report_path)


def code_version() -> str | None:
    """The project's git commit, when it is a git checkout with git installed."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(  # nosec B603  # git found on PATH, fixed argv, no shell
            [git, "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def record_in_mlflow(registry: RegistrySettings, report: dict, report_path: Path) -> None:
    """The run (and a passing candidate's registered version) in MLflow. The files written
    are the result; a registry that is down costs the record only, said on stderr."""
    if not registry.enabled:
        return
    try:
        recorded = log_training_run(registry, report, report_path)
    except Exception as error:  # MLflow raises many kinds; none may lose the candidate
        print(f"MLflow record failed ({registry.tracking_uri}): {error}", file=sys.stderr)
        return
    version = f", {registry.model} version {recorded.version}" if recorded.version else ""
    print(f"MLflow: run {recorded.run_id}{version} in {registry.tracking_uri}", flush=True)


def _write_candidate(output: Path, production: Path, paths: dict[str, Path], report: dict) -> Path:
    numbers = next_versions(production, output)
    classifier, encoder = numbers[CLASSIFIER], numbers[ENCODER]
    files = {
        f"{CLASSIFIER}/{classifier}/model.onnx": paths["classifier"],
        f"{ENCODER}/{encoder}/model.onnx": paths["encoder_fp32"],
        f"{ENCODER}/{encoder + 1}/model.onnx": paths["encoder_int8"],
        f"{INTENT_MODEL}/{classifier}/model.onnx": paths["intent"],  # the two fused
    }
    report["versions"] = {
        CLASSIFIER: str(classifier),
        ENCODER: {"fp32": str(encoder), "int8": str(encoder + 1)},
        INTENT_MODEL: str(classifier),
    }
    report["files"] = {relative: source.stat().st_size for relative, source in files.items()}
    copy_into(output, files)
    card = output / CLASSIFIER / str(classifier) / "model_card.json"
    _write_json(card, report)
    return card


def _write_json(path: Path, content: dict) -> None:
    write_text_whole(path, json.dumps(content, indent=2) + "\n")


def _print_gate(gate: GateResult) -> None:
    for name, figures in gate.metrics["sets"].items():
        print(
            f"accuracy on {name} ({figures['texts']} texts): production "
            f"{100 * figures['production_accuracy']:.2f} %, candidate "
            f"{100 * figures['candidate_accuracy']:.2f} %"
        )
    latency = gate.metrics["latency"]
    print(
        f"p50 per batch: production {latency['production_p50_ms_per_batch']} ms, candidate "
        f"{latency['candidate_p50_ms_per_batch']} ms (budget {latency['budget_ms']} ms)"
    )
    print("gate: PASSED" if gate.passed else "gate: REFUSED")
    for reason in gate.reasons:
        print(f"  - {reason}")


def _stamp(report: dict) -> str:
    return report["created_at"].replace(":", "").replace("-", "").replace("+0000", "Z")


def _versions(model_folder: Path) -> list[int]:
    if not model_folder.is_dir():
        return []
    return [int(p.name) for p in model_folder.iterdir() if p.is_dir() and p.name.isdigit()]


def _model_file(repository: Path, model: str, version: int) -> Path | None:
    path = repository / model / str(version) / "model.onnx"
    return path if path.is_file() else None
