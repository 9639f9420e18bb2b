"""Tables' parameters say what they are, and its noqa comments name only rules ruff runs.

A ``workspace`` is the ``Workspace`` protocol, a ``membership`` the ``Member`` protocol and an
``actor`` ``Actor`` (or ``Actor | None`` where an API key, with no person, may act): the ORM
objects and the lazy records of ``core.tenancy`` both fit them (``morket/core/types.py``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "morket" / "tables"
PROTOCOLS = {"workspace": {"Workspace"}, "membership": {"Member"}, "actor": {"Actor", "Actor | None"}}


def untyped_parameters(package: Path) -> list[str]:
    """Each parameter of a function in ``package`` without a type, or typed otherwise than its protocol."""
    found: list[str] = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if arg.arg in ("self", "cls"):
                    continue
                annotation = ast.unparse(arg.annotation) if arg.annotation is not None else None
                wanted = PROTOCOLS.get(arg.arg)
                if annotation is None or (wanted is not None and annotation not in wanted):
                    found.append(f"{path.name}:{node.lineno} {node.name}({arg.arg}: {annotation})")
    return found


def test_every_parameter_of_tables_has_a_type_and_workspaces_actors_and_members_their_protocols() -> None:
    assert untyped_parameters(PACKAGE) == []


def test_noqa_comments_in_tables_name_only_rules_ruff_runs_and_still_needs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--extend-select",
            "RUF100",
            "--output-format",
            "concise",
            "morket/tables",
            "tests/tables",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
