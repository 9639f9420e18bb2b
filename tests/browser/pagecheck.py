"""What every main page must be at every size: no sideways scroll, no wrapped navigation, no serious
or critical axe-core violation; and a screenshot of it for CI's artifacts.

Used by the layout tests of each area (``check_page``); the sizes are the issue's: a common laptop,
a full HD desktop and a phone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("MORKET_SCREENSHOT_DIR", ROOT / "test-artifacts" / "screenshots"))
SIZES = {"1366x768": (1366, 768), "1920x1080": (1920, 1080), "390x844": (390, 844)}

# Lines are counted per control from the rectangles of its text: a label that wraps has two tops.
_LAYOUT_PROBLEMS = r"""
() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1) {
    // Name the outermost elements that stick out, so the message says where to look.
    const out = [...document.body.querySelectorAll("*")].filter((el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > doc.clientWidth + 1 && !el.closest(".sidebar");
    });
    const outer = out.filter((el) => !out.includes(el.parentElement)).slice(0, 3);
    const names = outer.map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : ""));
    const where = names.join(", ");
    problems.push(`the page scrolls sideways: ${doc.scrollWidth}px of content in ${doc.clientWidth}px (${where})`);
  }
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  // A label wraps when one of its text nodes is laid out on more than one line.
  const lines = (el) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let most = 1;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.textContent.trim()) { continue; }
      const range = document.createRange();
      range.selectNodeContents(node);
      const tops = new Set();
      for (const r of range.getClientRects()) { if (r.width > 0) { tops.add(Math.round(r.top / 6)); } }
      most = Math.max(most, tops.size);
    }
    return most;
  };
  const controls = [
    "nav a", "nav button", "nav summary", ".topbar a", ".topbar button", ".topbar summary",
    ".ws-title", ".sidebar-link", ".grid-title",
  ].join(", ");
  for (const el of document.querySelectorAll(controls)) {
    if (visible(el) && el.textContent.trim() && lines(el) > 1) {
      const label = el.textContent.trim().slice(0, 40);
      problems.push(`wrapped over ${lines(el)} lines: ${el.tagName.toLowerCase()} "${label}"`);
    }
  }
  // A navigation laid out in a row wraps when its items do not share one row.
  for (const nav of document.querySelectorAll("nav, .topbar")) {
    const style = getComputedStyle(nav);
    if (!visible(nav) || style.display !== "flex" || !style.flexDirection.startsWith("row")) { continue; }
    const rows = new Set();
    for (const item of nav.children) {
      if (!visible(item)) { continue; }
      const r = item.getBoundingClientRect();
      rows.add(Math.round((r.top + r.height / 2) / 12));
    }
    if (rows.size > 1) { problems.push(`the ${nav.getAttribute("aria-label") || nav.className} navigation wraps`); }
  }
  const bar = document.querySelector(".topbar");
  if (bar && visible(bar) && bar.getBoundingClientRect().height > 60) {
    problems.push(`the top bar is ${bar.getBoundingClientRect().height}px high: its items wrapped`);
  }
  return problems;
}
"""

_AXE_RUN = """
async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")})`);
}
"""


def axe_source() -> str:
    """The axe-core script, installed from package-lock.json by ``make deps-dev``."""
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed ({AXE.relative_to(ROOT)}): run make deps-dev (npm ci)")
    return AXE.read_text(encoding="utf-8")


def layout_problems(page) -> list[str]:  # a Playwright page
    """Sideways scroll, wrapped navigation and a wrapped top bar on the page as it is now."""
    return page.evaluate(_LAYOUT_PROBLEMS)


def axe_violations(page) -> list[str]:
    """Run axe-core in the page and return its serious and critical violations.

    The script is evaluated through the DevTools protocol rather than added as a script tag, so the
    page keeps its real Content-Security-Policy (no inline scripts) while it is checked.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source() + "\n;undefined")
    return page.evaluate(_AXE_RUN)


def screenshot(page, name: str, size: str) -> Path:
    """Save the viewport as ``<name>-<size>.png`` in the screenshots folder CI keeps."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}-{size}.png"
    page.screenshot(path=str(path))
    return path


def check_page(page, name: str, size: str) -> list[str]:
    """Screenshot the page, then return every layout and accessibility problem, each prefixed by ``name``."""
    page.wait_for_load_state("load")
    screenshot(page, name, size)
    return [f"{name} at {size}: {p}" for p in layout_problems(page) + axe_violations(page)]
