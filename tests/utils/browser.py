"""A real headless Chromium for the workspace's page tests (Debian's chromium and
chromium-driver, installed by `make browser`), and axe-core run inside its pages."""

import os
import shutil
from pathlib import Path

import pytest

SERIOUS = ("serious", "critical")


def chromium_or_skip():
    """A Selenium driver of the headless Chromium; a skip saying why where it is missing
    (on CI, where `make test` installs it, a failure instead)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        reason = "Chromium or chromedriver missing: `make browser` installs them (as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
        "--no-first-run",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def axe_source() -> str:
    """axe-core's script as the axe-playwright-python wheel ships it (the Makefile installs
    it without its Playwright binding: only the script is used)."""
    import importlib.util

    spec = importlib.util.find_spec("axe_playwright_python")
    if spec is None or spec.origin is None:
        pytest.fail("axe-playwright-python is not installed (the Makefile installs it)")
    return (Path(spec.origin).parent / "axe.min.js").read_text()


def serious_violations(driver) -> list[dict]:
    """axe-core's violations of impact serious or critical in the page now shown."""
    driver.execute_script(axe_source())
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations)).catch(e => done([{id: 'axe-error',"
        " impact: 'critical', description: String(e), nodes: []}]));"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "description": v["description"],
            "nodes": [n.get("html", "")[:120] for n in v["nodes"][:3]],
        }
        for v in result
        if v["impact"] in SERIOUS
    ]
