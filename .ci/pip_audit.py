"""`make audit`'s package half: pip-audit over this environment, with reasons for what is ignored.

Exit 0: no known vulnerability outside .ci/pip-audit-ignore.txt, or the advisory service could not
be reached (printed as "skipped: <reason>": an offline CI box says nothing about the packages).
Exit 1: a vulnerability nobody has justified, an ignore line without a reason, or pip-audit
failing for any other reason.
"""

import json
import subprocess  # nosec B404: runs pip-audit, a fixed command with no shell
import sys
import urllib.request
from pathlib import Path

IGNORE_FILE = Path(__file__).with_name("pip-audit-ignore.txt")
PROBE_URL = "https://pypi.org/pypi/pip/json"  # what pip-audit's default service asks
OFFLINE_HINTS = ("ConnectionError", "Max retries exceeded", "NameResolutionError", "timed out")


def ignored() -> dict[str, str]:
    """Vulnerability id -> why it does not apply here, one `ID  reason` per line."""
    reasons = {}
    for number, line in enumerate(IGNORE_FILE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{IGNORE_FILE.name}:{number}: {vuln_id} has no reason")
        reasons[vuln_id] = reason.strip()
    return reasons


def unreachable() -> str | None:
    try:
        with urllib.request.urlopen(PROBE_URL, timeout=10):  # nosec B310: a fixed https URL
            return None
    except OSError as error:
        return f"PyPI's advisory service is unreachable ({error})"


def main() -> int:
    reasons = ignored()
    offline = unreachable()
    if offline:
        print(f"pip-audit: skipped: {offline}")
        return 0
    command = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    run = subprocess.run(  # nosec B603: fixed argv, no shell, our own interpreter
        [*command, "--skip-editable"], capture_output=True, text=True, check=False
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        if any(hint in run.stderr for hint in OFFLINE_HINTS):
            print(f"pip-audit: skipped: the advisory service failed mid-run\n{run.stderr[-2000:]}")
            return 0
        print(run.stderr[-4000:], file=sys.stderr)
        return 1
    found = [
        (dep["name"], dep["version"], vuln)
        for dep in report.get("dependencies", [])
        for vuln in dep.get("vulns", [])
    ]
    unexplained = [
        (name, version, vuln)
        for name, version, vuln in found
        if not {vuln["id"], *vuln.get("aliases", [])} & reasons.keys()
    ]
    for name, version, vuln in found:
        why = reasons.get(vuln["id"]) or next(
            (reasons[a] for a in vuln.get("aliases", []) if a in reasons), None
        )
        fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
        status = f"ignored: {why}" if why else "NOT JUSTIFIED"
        print(f"{name} {version}: {vuln['id']} (fixed in {fixed}) - {status}")
    audited = len(report.get("dependencies", []))
    print(f"pip-audit: {audited} packages, {len(found)} known vulnerabilities, "
          f"{len(unexplained)} not justified in {IGNORE_FILE.name}")  # fmt: skip
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
