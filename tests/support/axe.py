"""Run axe-core inside a Playwright page and return its serious and critical violations.

axe-core is a dev dependency; its ``axe.min.js`` is looked up where the installers put it: the
``MORKET_AXE_JS`` setting, the project's ``node_modules``, Debian's ``node-axe-core`` package, or a
Python package that bundles it. A test that needs it is skipped, naming where it looked, when none
of them has it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEVERE = ("serious", "critical")


def _candidates() -> list[Path]:
    found = [Path(os.environ["MORKET_AXE_JS"])] if os.environ.get("MORKET_AXE_JS") else []
    found += [ROOT / "node_modules" / "axe-core" / "axe.min.js", Path("/usr/share/nodejs/axe-core/axe.min.js")]
    for package in ("axe_playwright_python", "axe_core_python", "axe_selenium_python"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                found += sorted(Path(folder).rglob("axe*.min.js"))
    return found


def axe_path() -> Path | None:
    """Return where axe.min.js is installed, or None."""
    return next((path for path in _candidates() if path.is_file()), None)


def skip_without_axe() -> None:
    """Skip the calling test, naming where axe-core was looked for (call it after the checks that need no axe)."""
    places = ", ".join(str(p) for p in _candidates())
    pytest.skip(f"axe-core is not installed (looked at {places}); `make deps-dev` installs it")


def axe_script() -> str:
    """Return the text of axe.min.js, or skip the test saying where it was looked for."""
    path = axe_path()
    if path is None:
        skip_without_axe()
    return path.read_text(encoding="utf-8")


def severe_violations(page, *, within: str | None = None) -> list[str]:
    """Inject axe-core into ``page``, run it on the document (or the part ``within`` selects), and
    describe each serious or critical violation."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: a <script> tag would be refused by the page's CSP.
        page.evaluate(axe_script() + "\n;true")
    result = page.evaluate(
        """async (within) => {
            const context = within ? {include: [[within]]} : document;
            const found = await window.axe.run(context, {resultTypes: ["violations"]});
            return found.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ") + " " + (n.failureSummary || ""))}));
        }""",
        within,
    )
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}" for v in result if v["impact"] in SEVERE]
