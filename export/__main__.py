"""Command line of the export pipeline:
`python -m export {build,bands,xray,xray-retrain,xray-publish,credit,credit-report,
credit-retrain,credit-publish,tune-vote,tensorrt,device,gpu-parity,dataset,retrain,publish}`."""

import argparse
import json
import sys
from pathlib import Path

from export.device import ACCELERATORS, DEVICES
from export.gate import HOLDOUT_FRACTION, GateCriteria
from export.lexical import lexical_for
from export.rerank import vote_for
from export.settings import ExportSettings
from export.xray import EPOCHS as XRAY_EPOCHS
from export.xray import QUICK_EPOCHS as XRAY_QUICK_EPOCHS

# `make up`'s first model, a recipe that serves a fresh machine within minutes: no fine-tuning,
# the head trained on the packaged encoder's embeddings of every training text, blended with
# the nearest texts' vote and the lexical view (94.29 % on Banking77's test split through
# `/v1/triage`; README, "Triage accuracy"). `make train-full` fine-tunes the better one.
QUICK_EPOCHS = 0
VOTE_HELP = (
    "the head alone, without the vote of the nearest training texts by the packaged encoder's "
    "embeddings (export/rerank.py; the vote adds a second encoder to a fine-tuned model)"
)
LEXICAL_HELP = "without the lexical view, TF-IDF of the word pieces (export/lexical.py)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build", help="train, export, quantize and write the model repository"
    )
    build.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="fine-tuning epochs (6 for the full run; 0: the head alone on the packaged "
        "encoder's embeddings)",
    )
    build.add_argument(
        "--train-per-label", type=int, help="train on this many texts per intent only"
    )
    build.add_argument(
        "--quick",
        action="store_true",
        help="the first model `make up` builds: the head on the packaged encoder's embeddings, "
        "with the vote and the lexical view, no fine-tuning (about 2 minutes on 2 cores, 94 %%)",
    )
    build.add_argument(
        "--test-limit", type=int, help="check accuracy on the first N test texts only"
    )
    build.add_argument("--max-length", type=int, default=64, help="tokens per text during training")
    build.add_argument(
        "--repository", type=Path, help="model repository to write (default: the project's)"
    )
    build.add_argument(
        "--if-missing", action="store_true", help="do nothing when the repository is built"
    )
    build.add_argument("--no-tensorrt", action="store_true", help="skip the TensorRT engine step")
    build.add_argument("--no-vote", action="store_true", help=VOTE_HELP)
    build.add_argument("--no-lexical", action="store_true", help=LEXICAL_HELP)
    build.add_argument(
        "--checkpoint",
        type=Path,
        help="a fine-tuned model a build saved (its work folder's intent_model.pt): export it "
        "again, with what follows training, instead of training anew",
    )

    xray = commands.add_parser(
        "xray",
        help="train the chest x-ray classifier on PneumoniaMNIST, export it (fp32, INT8) and "
        "install it as xray_classifier",
    )
    xray.add_argument(
        "--epochs",
        type=int,
        default=XRAY_EPOCHS,
        help=f"training epochs (default %(default)s; --quick: {XRAY_QUICK_EPOCHS})",
    )
    xray.add_argument(
        "--quick", action="store_true", help="the recipe `make up` builds (fewer epochs)"
    )
    xray.add_argument("--train-limit", type=int, help="train on the first N images only")
    xray.add_argument(
        "--repository", type=Path, help="model repository to write (default: the project's)"
    )
    xray.add_argument(
        "--if-missing", action="store_true", help="do nothing when the classifier is built"
    )
    xray.add_argument("--no-tensorrt", action="store_true", help="skip the TensorRT engine step")

    _xray_retrain_parser(commands)
    credit_report = commands.add_parser(
        "credit-report",
        help="the served credit model's fairness on the test split: approval, AUC and "
        "true-positive rates by sex, marital status and age band, with the gaps",
    )
    credit_report.add_argument("--model", type=Path, help="ONNX file (default: the served one)")
    credit_report.add_argument(
        "--output",
        type=Path,
        help="the JSON (default: var/export/credit/fairness.json); the chart beside it, as .png",
    )
    credit = commands.add_parser(
        "credit",
        help="train the credit models (gradient-boosted trees, a scorecard) on the Taiwan card "
        "holders, export them with their contributions and install the trees as credit_model",
    )
    credit.add_argument(
        "--quick", action="store_true", help="one tree size instead of the grid (`make up`)"
    )
    credit.add_argument("--train-limit", type=int, help="train on the first N applicants only")
    credit.add_argument("--no-german", action="store_true", help="skip German credit's costs")
    credit.add_argument(
        "--repository", type=Path, help="model repository to write (default: the project's)"
    )
    credit.add_argument(
        "--if-missing", action="store_true", help="do nothing when credit_model is built"
    )
    bands = commands.add_parser(
        "bands",
        help="the triage confidence bands: thresholds on held-out training texts, measured on "
        "the test split with the served file, written beside it",
    )
    bands.add_argument("--epochs", type=int, default=0, help="the recipe (0: `make up`'s)")
    bands.add_argument("--test-limit", type=int, help="the first N test texts only")
    bands.add_argument("--repository", type=Path, help="model repository (default: the project's)")
    bands.add_argument(
        "--if-missing", action="store_true", help="do nothing when the bands are written"
    )
    _step_publish_parser(commands, "xray-publish", "x-ray")
    _credit_retrain_parser(commands)
    _step_publish_parser(commands, "credit-publish", "credit")

    tune = commands.add_parser(
        "tune-vote",
        help="choose the vote's settings on a held-out tenth of the training split, then "
        "score them once on the test split",
    )
    tune.add_argument(
        "--epochs", type=int, default=0, help="the recipe (0: the quick one, no fine-tuning)"
    )
    tune.add_argument(
        "--average-last",
        type=int,
        help="a fine-tuned recipe's weights: the mean of those at the ends of the last K epochs "
        "(1: the last weights; default: the recipe's, export/train.py)",
    )
    tune.add_argument(
        "--held-out-only",
        action="store_true",
        help="choose, without scoring on the test split (which trains the recipe again on the "
        "whole training split)",
    )
    tune.add_argument("--output", type=Path, help="also write the JSON here")

    trt = commands.add_parser(
        "tensorrt", help="build the TensorRT encoder engine from the built repository"
    )
    trt.add_argument("--repository", type=Path, help="model repository (default: the project's)")

    device = commands.add_parser(
        "device",
        help="run a repository's ONNX models on the CPU or a GPU (rewrites their configs)",
    )
    device.add_argument("device", choices=DEVICES)
    device.add_argument(
        "--accelerator",
        choices=ACCELERATORS,
        help="on a GPU: TensorRT fp16 engines or plain CUDA (default: EXPORT_GPU_ACCELERATOR)",
    )
    device.add_argument("--repository", type=Path, help="model repository (default: the project's)")

    gpu = commands.add_parser(
        "gpu-parity",
        help="the served ticket_intent on CUDA and TensorRT against the CPU, on the test split",
    )
    gpu.add_argument("--repository", type=Path, help="model repository (default: the project's)")
    gpu.add_argument("--test-limit", type=int, help="the first N test texts only")
    gpu.add_argument("--output", type=Path, help="also write the JSON here")

    dataset = commands.add_parser(
        "dataset",
        help="write a training snapshot: Banking77's train split plus agents' intent corrections",
    )
    dataset.add_argument(
        "--database-url", help="the orchestrator's database (default: DATABASE_URL, as it does)"
    )
    dataset.add_argument("--output", type=Path, help="folder for snapshots (default: var/datasets)")

    retrain = commands.add_parser(
        "retrain",
        help="train a candidate on a snapshot and pass it through the gate against production",
    )
    retrain.add_argument(
        "--snapshot", type=Path, help="snapshot folder (default: the newest under var/datasets)"
    )
    retrain.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="fine-tuning epochs (0: the head alone on the packaged encoder's embeddings)",
    )
    retrain.add_argument(
        "--train-per-label", type=int, help="train on this many texts per intent only"
    )
    retrain.add_argument(
        "--test-limit",
        type=int,
        help="evaluate on N frozen test texts only, taken across the intents in turn",
    )
    retrain.add_argument("--max-length", type=int, default=64, help="tokens per text in training")
    retrain.add_argument(
        "--production-version",
        type=int,
        help="the triage version to gate against (default: production in the orchestrator's "
        "database, else 1)",
    )
    _candidate_arguments(retrain)
    retrain.add_argument(
        "--holdout-fraction",
        type=float,
        default=HOLDOUT_FRACTION,
        help="the most recent share of the snapshot's corrections kept out of training and "
        "gated on (default %(default)s)",
    )
    retrain.add_argument(
        "--accuracy-tolerance",
        type=float,
        default=GateCriteria.accuracy_tolerance,
        help="points the candidate's accuracy may be below production's (default %(default)s)",
    )
    retrain.add_argument(
        "--max-recall-drop",
        type=float,
        default=GateCriteria.max_recall_drop,
        help="points any intent's recall may fall (default %(default)s)",
    )
    retrain.add_argument(
        "--recall-alpha",
        type=float,
        default=GateCriteria.recall_alpha,
        help="refuse a recall drop only when two equally good models would show one as large "
        "less often than this (default %(default)s; 1: the margin alone; export/gate.py)",
    )
    retrain.add_argument(
        "--latency-budget",
        type=float,
        default=GateCriteria.latency_budget,
        help="candidate p50 per batch at most this times production's (default %(default)s)",
    )
    retrain.add_argument("--no-vote", action="store_true", help=VOTE_HELP)
    retrain.add_argument("--no-lexical", action="store_true", help=LEXICAL_HELP)

    publish = commands.add_parser(
        "publish",
        help="copy a passed candidate into the serving repository beside production, unserved",
    )
    publish.add_argument(
        "card",
        type=Path,
        nargs="?",
        help="the candidate's model_card.json (default: the newest under var/candidates)",
    )
    publish.add_argument(
        "--repository", type=Path, help="serving repository (default: the project's)"
    )

    args = parser.parse_args(argv)
    settings = ExportSettings()
    if args.command == "tune-vote":
        return _tune(args, settings)
    if args.command == "publish":
        return _publish(args, settings)
    if args.command == "build":
        return _build(args, settings)
    if args.command == "xray":
        return _xray(args, settings)
    if args.command == "credit":
        return _credit(args, settings)
    if args.command == "credit-report":
        return _credit_report(args, settings)
    if args.command == "xray-retrain":
        return _xray_retrain(args, settings)
    if args.command == "bands":
        return _bands(args, settings)
    if args.command == "credit-retrain":
        return _credit_retrain(args, settings)
    if args.command in ("xray-publish", "credit-publish"):
        return _step_publish(args, settings)
    if args.command == "device":
        return _device(args, settings)
    if args.command == "gpu-parity":
        return _gpu_parity(args, settings)
    if args.command == "dataset":
        return _dataset(args, settings)
    if args.command == "retrain":
        return _retrain(args, settings)
    return _tensorrt(args, settings)


def _build(args, settings: ExportSettings) -> int:
    from contracts.models import missing_files
    from export.build import BuildOptions, build

    repository = args.repository or settings.model_repository
    if args.if_missing and not missing_files(repository):
        print(f"model repository {repository} is built; nothing to do")
        return 0
    epochs = QUICK_EPOCHS if args.quick else args.epochs
    if args.checkpoint and not epochs:
        print("error: --checkpoint is a fine-tuned model; the quick recipe fine-tunes nothing")
        return 2
    if args.checkpoint and not args.checkpoint.is_file():
        print(f"error: no checkpoint at {args.checkpoint}")
        return 2
    options = BuildOptions(
        epochs=epochs,
        train_per_label=args.train_per_label,
        test_limit=args.test_limit,
        max_length=args.max_length,
        tensorrt=not args.no_tensorrt,
        rerank=None if args.no_vote else vote_for(epochs),
        lexical=None if args.no_lexical else lexical_for(epochs),
        checkpoint=args.checkpoint,
    )
    summary = build(settings, options, repository)
    print(json.dumps(summary, indent=2))
    return 0


def _xray(args, settings: ExportSettings) -> int:
    from contracts.xray import XRAY_FILE
    from export.xray.build import XrayBuildOptions, build_xray

    repository = args.repository or settings.model_repository
    if args.if_missing and (repository / XRAY_FILE).is_file():
        print(f"{repository / XRAY_FILE} is built; nothing to do")
        return 0
    options = XrayBuildOptions(
        epochs=XRAY_QUICK_EPOCHS if args.quick else args.epochs,
        train_limit=args.train_limit,
        tensorrt=not args.no_tensorrt,
    )
    build_xray(settings, options, repository)
    return 0


def _credit(args, settings: ExportSettings) -> int:
    from contracts.credit import CREDIT_FILE
    from export.credit.build import CreditBuildOptions, build_credit

    repository = args.repository or settings.model_repository
    if args.if_missing and (repository / CREDIT_FILE).is_file():
        print(f"{repository / CREDIT_FILE} is built; nothing to do")
        return 0
    options = CreditBuildOptions(
        quick=args.quick, train_limit=args.train_limit, german=not args.no_german
    )
    build_credit(settings, options, repository)
    return 0


def _credit_report(args, settings: ExportSettings) -> int:
    from export.credit.fairness import fairness_report, write_report

    try:
        report = fairness_report(settings, args.model)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or settings.work_dir / "credit" / "fairness.json"
    written, chart = write_report(report, output)
    summary = {a: found["gaps"] for a, found in report["by"].items()}
    print(json.dumps({"everyone": report["everyone"], "gaps": summary}, indent=2))
    print(f"wrote {written} and {chart}")
    return 0


def _candidate_arguments(parser) -> None:
    """What the retrain commands share: where production is, where the candidate goes,
    and a broken candidate on purpose."""
    parser.add_argument(
        "--production-repository",
        type=Path,
        help="the serving repository production is read from (default: the project's)",
    )
    parser.add_argument(
        "--output", type=Path, help="candidates repository to write (default: var/candidates)"
    )
    parser.add_argument(
        "--shuffle-labels",
        action="store_true",
        help="train on shuffled labels: a broken candidate, to see the gate refuse it",
    )


def _one_step_retrain_arguments(parser, noun: str, labels: str, holdout: float) -> None:
    """What xray-retrain and credit-retrain share beyond _candidate_arguments: the database
    their labels come from, the production version and the held-out share of the labels."""
    parser.add_argument(
        "--database-url", help="the orchestrator's database (default: DATABASE_URL, as it does)"
    )
    parser.add_argument(
        "--production-version",
        type=int,
        help=f"the {noun} version to gate against (default: production in the orchestrator's "
        "database, else 1)",
    )
    _candidate_arguments(parser)
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=holdout,
        help=f"the most recent share of the {labels} kept out of training and gated on "
        "(default %(default)s)",
    )


def _xray_retrain_parser(commands) -> None:
    from export.xray.retrain import HOLDOUT_FRACTION as XRAY_HOLDOUT
    from export.xray.retrain import XrayGateCriteria

    parser = commands.add_parser(
        "xray-retrain",
        help="train an x-ray candidate on PneumoniaMNIST plus clinicians' confirmations and "
        "pass it through the gate against production",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=XRAY_QUICK_EPOCHS,
        help="training epochs (default %(default)s, the recipe `make up` builds)",
    )
    parser.add_argument("--train-limit", type=int, help="the first N training images only")
    _one_step_retrain_arguments(parser, "x-ray", "confirmations", XRAY_HOLDOUT)
    parser.add_argument(
        "--accuracy-tolerance",
        type=float,
        default=XrayGateCriteria.accuracy_tolerance,
        help="points the candidate's accuracy may be below production's (default %(default)s)",
    )
    parser.add_argument(
        "--auc-tolerance",
        type=float,
        default=XrayGateCriteria.auc_tolerance,
        help="how far the candidate's test AUC may be below production's (default %(default)s)",
    )


def _xray_retrain(args, settings: ExportSettings) -> int:
    from export.xray.build import XrayBuildOptions
    from export.xray.retrain import XrayGateCriteria, XrayRetrainOptions, retrain_xray

    options = XrayRetrainOptions(
        database_url=args.database_url or settings.database_url,
        production=args.production_repository,
        production_version=args.production_version,
        output=args.output,
        build=XrayBuildOptions(epochs=args.epochs, train_limit=args.train_limit, tensorrt=False),
        holdout_fraction=args.holdout_fraction,
        shuffle_labels=args.shuffle_labels,
        criteria=XrayGateCriteria(args.accuracy_tolerance, args.auc_tolerance),
    )
    return _one_step_retrain(retrain_xray, settings, options)


def _bands(args, settings: ExportSettings) -> int:
    from contracts.bands import bands_file
    from export.bands import run_bands

    repository = args.repository or settings.model_repository
    if args.if_missing and (repository / bands_file(1)).is_file():
        print(f"{repository / bands_file(1)} is written; nothing to do")
        return 0
    print(json.dumps(run_bands(settings, repository, args.epochs, args.test_limit), indent=2))
    return 0


def _step_publish_parser(commands, name: str, noun: str) -> None:
    parser = commands.add_parser(
        name, help=f"copy a passed {noun} candidate into the serving repository beside production"
    )
    parser.add_argument(
        "card",
        type=Path,
        nargs="?",
        help=f"the candidate's model_card.json (default: the newest {noun} one under "
        "var/candidates)",
    )
    parser.add_argument(
        "--repository", type=Path, help="serving repository (default: the project's)"
    )


def _step_publish(args, settings: ExportSettings) -> int:
    """xray-publish and credit-publish: the one-step models (export/step_publish.py)."""
    from export.credit.publish import CREDIT
    from export.publish import NotPublishable
    from export.step_publish import newest_step_card, publish_step
    from export.xray.publish import XRAY

    spec = XRAY if args.command == "xray-publish" else CREDIT
    repository = args.repository or settings.model_repository
    try:
        card = args.card or newest_step_card(spec, settings.candidates_dir)
        published = publish_step(spec, card, repository)
    except (NotPublishable, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"published {spec.noun} version {published.version} as {published.model} in "
        f"{repository}; served versions: {published.served}"
    )
    print(
        f'next: register it (POST /v1/model/versions {{"model": "{spec.ensemble}", '
        f'"version": {published.version}}}), then start a canary'
    )
    return 0


def _credit_retrain_parser(commands) -> None:
    from export.credit.retrain import HOLDOUT_FRACTION as CREDIT_HOLDOUT
    from export.credit.retrain import CreditGateCriteria

    parser = commands.add_parser(
        "credit-retrain",
        help="train a credit candidate on the Taiwan training split plus lenders' outcomes and "
        "pass it through the gate against production",
    )
    parser.add_argument(
        "--grid",
        action="store_true",
        help="search `export credit`'s tree sizes (default: `make up`'s one size)",
    )
    parser.add_argument("--train-limit", type=int, help="the first N training applicants only")
    _one_step_retrain_arguments(parser, "credit", "outcomes", CREDIT_HOLDOUT)
    parser.add_argument(
        "--auc-tolerance",
        type=float,
        default=CreditGateCriteria.auc_tolerance,
        help="how far the candidate's AUC may be below production's (default %(default)s)",
    )
    parser.add_argument(
        "--brier-tolerance",
        type=float,
        default=CreditGateCriteria.brier_tolerance,
        help="how far the candidate's test Brier score may be above production's "
        "(default %(default)s)",
    )


def _credit_retrain(args, settings: ExportSettings) -> int:
    from export.credit.retrain import CreditGateCriteria, CreditRetrainOptions, retrain_credit

    options = CreditRetrainOptions(
        database_url=args.database_url or settings.database_url,
        production=args.production_repository,
        production_version=args.production_version,
        output=args.output,
        grid=args.grid,
        train_limit=args.train_limit,
        holdout_fraction=args.holdout_fraction,
        shuffle_labels=args.shuffle_labels,
        criteria=CreditGateCriteria(args.auc_tolerance, args.brier_tolerance),
    )
    return _one_step_retrain(retrain_credit, settings, options)


def _tune(args, settings: ExportSettings) -> int:
    from export.tune import tune

    served = (vote_for(args.epochs), lexical_for(args.epochs).weight, 0.0)  # no packaged head
    if args.average_last is not None and not 1 <= args.average_last <= max(args.epochs, 1):
        print(f"error: --average-last is between 1 and the epochs, not {args.average_last}")
        return 2
    result = tune(
        settings, args.epochs, served, test=not args.held_out_only, average_last=args.average_last
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


def _tensorrt(args, settings: ExportSettings) -> int:
    from contracts.models import ENCODER_VERSIONS
    from export.tensorrt import build_engine

    repository = args.repository or settings.model_repository
    onnx_path = repository / "ticket_encoder" / ENCODER_VERSIONS["fp32"] / "model.onnx"
    result = build_engine(onnx_path, repository)
    print(result.detail)
    return 0 if result.built or "skipped" in result.detail else 1


def _device(args, settings: ExportSettings) -> int:
    from export import device

    repository = args.repository or settings.model_repository
    accelerator = args.accelerator or settings.gpu_accelerator
    return device.main([args.device, "--accelerator", accelerator, "--repository", str(repository)])


def _gpu_parity(args, settings: ExportSettings) -> int:
    from contracts.models import INTENT_FILE
    from export.data import load_banking77
    from export.gpu_parity import parity

    repository = args.repository or settings.model_repository
    data = load_banking77(settings.banking77_dir)
    split = data.test.head(args.test_limit)
    cache = settings.work_dir / "trt_engine_cache"
    results = parity(repository / INTENT_FILE, split, data.intents, cache)
    text = json.dumps({"model": str(repository / INTENT_FILE), "results": results}, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


def _retrain(args, settings: ExportSettings) -> int:
    from export.production import ProductionMissing
    from export.retrain import RetrainOptions, retrain

    try:
        criteria = GateCriteria(
            accuracy_tolerance=args.accuracy_tolerance,
            max_recall_drop=args.max_recall_drop,
            recall_alpha=args.recall_alpha,
            latency_budget=args.latency_budget,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = RetrainOptions(
        snapshot=args.snapshot,
        production=args.production_repository,
        production_version=args.production_version,
        output=args.output,
        epochs=args.epochs,
        train_per_label=args.train_per_label,
        test_limit=args.test_limit,
        max_length=args.max_length,
        holdout_fraction=args.holdout_fraction,
        shuffle_labels=args.shuffle_labels,
        rerank=None if args.no_vote else vote_for(args.epochs),
        lexical=None if args.no_lexical else lexical_for(args.epochs),
        criteria=criteria,
    )
    try:
        result = retrain(settings, options)
    except (ProductionMissing, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _gate_exit(result.report["gate"])


def _one_step_retrain(retrain, settings: ExportSettings, options) -> int:
    """xray-retrain and credit-retrain: 2 when it cannot run (no production, an unreadable
    database, missing data), else the gate's exit."""
    from export.corrections import CorrectionsUnavailable
    from export.production import ProductionMissing

    try:
        result = retrain(settings, options)
    except (ProductionMissing, CorrectionsUnavailable, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _gate_exit(result.card["gate"])


def _gate_exit(gate: dict) -> int:
    """A retrain's exit status: 0 passed, 1 refused (its reasons on stderr)."""
    if gate["passed"]:
        return 0
    print("candidate refused:", file=sys.stderr)
    for reason in gate["reasons"]:
        print(f"  - {reason}", file=sys.stderr)
    return 1


def _publish(args, settings: ExportSettings) -> int:
    from export.publish import NotPublishable, newest_card, publish

    repository = args.repository or settings.model_repository
    try:
        card = args.card or newest_card(settings.candidates_dir)
        published = publish(card, repository)
    except (NotPublishable, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"published triage version {published.version} (ticket_classifier "
        f"{published.version}, ticket_encoder {published.encoder_version}) as "
        f"{published.model} in {repository}; served versions: {sorted(published.served)}"
    )
    print(
        "next: register it (POST /v1/model/versions "
        f'{{"model": "ticket_triage", "version": {published.version}}}), then start a canary'
    )
    return 0


def _dataset(args, settings: ExportSettings) -> int:
    from export.corrections import CorrectionsUnavailable, read_corrections, shown_url
    from export.data import load_banking77
    from export.dataset import Row, build_snapshot, summary_lines, write_snapshot

    url = args.database_url or settings.database_url
    data = load_banking77(settings.banking77_dir)
    print(
        f"Banking77 from {settings.banking77_dir}: {len(data.train)} train rows, "
        f"{len(data.test)} test rows (frozen), {len(data.intents)} intents"
    )
    try:
        corrections = read_corrections(url)
    except CorrectionsUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"corrections from {shown_url(url)}: {len(corrections)} intent corrections")

    def rows(split) -> list[Row]:
        return [Row(t, data.intents[i]) for t, i in zip(split.texts, split.labels, strict=True)]

    snapshot = build_snapshot(rows(data.train), rows(data.test), data.intents, corrections)
    sources = {"banking77_dir": str(settings.banking77_dir), "database": shown_url(url)}
    folder, written = write_snapshot(snapshot, args.output or settings.datasets_dir, sources)
    for line in summary_lines(snapshot):
        print(line)
    if written:
        print(f"wrote {folder} (train.csv, manifest.json)")
    else:
        print(f"the same snapshot exists at {folder}; not rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
