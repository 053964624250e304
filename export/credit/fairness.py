"""`python -m export credit-report`: how the served credit model treats groups, on the test
split: by sex, by marital status and by age band (none of them a model input; sex and
marriage are not even read), for each group

- the approval rate and the decline rate under a decision policy (the default costs unless
  others are given), with the share of each group's applicants;
- AUC: how well the model ranks that group's applicants;
- the true-positive rate: of the group's defaulters, the share not approved (caught);
- the approval rate of the group's repayers (equal opportunity: a good applicant's chance of
  approval should not depend on the group);

and, per attribute, the gap between the groups' highest and lowest value of each. Written as
JSON and a chart.
"""

import json
from pathlib import Path

import numpy as np

from contracts.credit import CREDIT_FILE, DEFAULT_COSTS, thresholds
from export.credit.data import CreditSplit, load_taiwan
from export.credit.onnx_files import outputs
from export.settings import ExportSettings
from export.xray.metrics import auc

ATTRIBUTES = {
    "sex": {1: "male", 2: "female"},
    "marriage": {1: "married", 2: "single", 3: "other", 0: "not given"},
}
AGE_BANDS = ((0, 25, "under 25"), (25, 35, "25-34"), (35, 45, "35-44"), (45, 55, "45-54"),
             (55, 200, "55 and over"))  # fmt: skip
MIN_GROUP = 30  # smaller groups are listed without rates: too few to say anything
METRICS = ("approval_rate", "decline_rate", "auc", "true_positive_rate", "repayer_approval_rate")


def fairness_report(settings: ExportSettings, model: Path | None = None, costs=None) -> dict:
    model = model or settings.model_repository / CREDIT_FILE
    test = load_taiwan(settings.credit_dir)["test"]
    costs = costs or DEFAULT_COSTS
    cut = thresholds(**costs)
    probabilities = outputs(model, test.features)["probability"][:, 0]
    groups = _groups(test)
    by_attribute = {}
    for attribute, members in groups.items():
        rows = {
            name: _rates(probabilities[mask], test.labels[mask], cut)
            for name, mask in members.items()
        }
        by_attribute[attribute] = {"groups": rows, "gaps": _gaps(rows)}
    return {
        "model": str(model),
        "split": "Taiwan test split (ID above 24,000)",
        "policy": {**costs, "approve_below": cut.approve_below, "decline_from": cut.decline_from},
        "everyone": _rates(probabilities, test.labels, cut),
        "by": by_attribute,
    }


def _groups(test: CreditSplit) -> dict[str, dict[str, np.ndarray]]:
    found = {
        attribute: {name: test.fields[attribute].to_numpy() == code for code, name in names.items()}
        for attribute, names in ATTRIBUTES.items()
    }
    age = test.fields["age"].to_numpy()
    found["age_band"] = {name: (age >= low) & (age < high) for low, high, name in AGE_BANDS}
    return found


def _rates(probabilities: np.ndarray, labels: np.ndarray, cut) -> dict:
    rates: dict = {"applicants": len(labels)}
    if len(labels) < MIN_GROUP:
        return rates
    approved = probabilities < cut.approve_below
    declined = probabilities >= cut.decline_from
    defaulters, repayers = labels == 1, labels == 0
    rates |= {
        "default_rate": round(float(labels.mean()), 4),
        "approval_rate": round(float(approved.mean()), 4),
        "decline_rate": round(float(declined.mean()), 4),
        "auc": round(auc(probabilities, labels), 4)
        if defaulters.any() and repayers.any()
        else None,
        "true_positive_rate": round(float((~approved[defaulters]).mean()), 4)
        if defaulters.any()
        else None,
        "repayer_approval_rate": round(float(approved[repayers].mean()), 4)
        if repayers.any()
        else None,
    }
    return rates


def _gaps(rows: dict[str, dict]) -> dict:
    """Per metric, the highest group's value minus the lowest's (groups with rates only)."""
    gaps = {}
    for metric in METRICS:
        values = [r[metric] for r in rows.values() if r.get(metric) is not None]
        if len(values) >= 2:
            gaps[metric] = round(max(values) - min(values), 4)
    return gaps


def fairness_chart(report: dict, path: Path) -> Path:
    """One panel per attribute: each group's approval rate, true-positive rate and AUC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("approval_rate", "repayer_approval_rate", "true_positive_rate", "auc")
    figure, panels = plt.subplots(1, len(report["by"]), figsize=(13, 4), sharey=True)
    for axes, (attribute, found) in zip(panels, report["by"].items(), strict=True):
        names = [n for n, r in found["groups"].items() if r.get("auc") is not None]
        width = 0.8 / len(shown)
        for i, metric in enumerate(shown):
            values = [found["groups"][n][metric] for n in names]
            axes.bar(np.arange(len(names)) + i * width, values, width, label=metric)
        axes.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, fontsize=8)
        gaps = found["gaps"]
        axes.set_title(
            f"{attribute}: approval gap {gaps.get('approval_rate', 0):.3f}, "
            f"AUC gap {gaps.get('auc', 0):.3f}",
            fontsize=9,
        )
        axes.set_ylim(0, 1)
    panels[0].legend(fontsize=7, loc="upper left")
    policy = report["policy"]
    figure.suptitle(
        f"credit_model on the test split, approve below {policy['approve_below']:.2f}, "
        f"decline from {policy['decline_from']:.2f}",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(report: dict, output: Path) -> tuple[Path, Path]:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return output, fairness_chart(report, output.with_suffix(".png"))
