"""A stand-in for `python -m export` in the retrain-run tests: prints what each command prints
(the `== i/7` steps, `wrote <report>`, `published triage version ...`, the x-ray's commands
alike) and records its argv.

FAKE_EXPORT_DIR: where it writes; FAKE_EXPORT_GATE: "pass" or "refuse"; FAKE_EXPORT_FAIL: the
command that exits 2; FAKE_EXPORT_HOLD: a file it waits for before retraining."""

import json
import os
import sys
import time
from pathlib import Path

folder = Path(os.environ["FAKE_EXPORT_DIR"])
command = sys.argv[1]
with (folder / "argv.jsonl").open("a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\n")
if os.environ.get("FAKE_EXPORT_FAIL") == command:
    print(f"error: {command} cannot run here", file=sys.stderr)
    sys.exit(2)
if command == "dataset":
    print("wrote var/datasets/0123456789ab (train.csv, manifest.json)")
elif command in ("retrain", "xray-retrain"):
    hold = os.environ.get("FAKE_EXPORT_HOLD")
    while hold and not Path(hold).exists():
        time.sleep(0.05)
    passed = os.environ.get("FAKE_EXPORT_GATE", "pass") == "pass"
    for step in range(1, 8):
        print(f"== {step}/7 step {step}", flush=True)
        print("predicting\r 50%\r100%", flush=True)  # a progress bar's carriage returns
    report = {
        "status": "passed" if passed else "refused",
        "gate": {"passed": passed, "reasons": [] if passed else ["accuracy fell"]},
    }
    path = folder / ("card.json" if passed else "refused.json")
    path.write_text(json.dumps(report))
    print(f"wrote {path}")
    sys.exit(0 if passed else 1)
elif command == "publish":
    print("published triage version 2 (ticket_classifier 2, ticket_encoder 4) as ticket_triage_v2")
elif command == "xray-publish":
    print("published xray version 2 as xray_diagnosis_v2 in model_repository; served: [1, 2]")
