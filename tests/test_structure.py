"""Every function of the package fits on a screen: no function body in ``src/nmrnn`` (its
docstring not counted) is longer than :data:`MOST_LINES` lines unless its first body line is a
comment that says why (``# long: ...``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nmrnn"
MOST_LINES = 100


def long_functions(root: Path = SRC, most: int = MOST_LINES) -> list[str]:
    """'path:line name (n lines)' of every function whose body, without its docstring, is longer
    than ``most`` lines and does not open with a ``# long:`` comment."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body = body[1:] or body
            first = body[0].lineno
            length = node.end_lineno - first + 1
            opening = lines[first - 2].strip() if first >= 2 else ""
            if length > most and not opening.startswith("# long:"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} "
                             f"({length} lines)")  # fmt: skip
    return found


def test_no_function_is_longer_than_a_screen_without_saying_why():
    assert long_functions() == []


def test_the_check_finds_a_long_function_and_accepts_a_reason(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MOST_LINES + 1))
    (tmp_path / "long.py").write_text(f'def f():\n    """Doc."""\n{body}\n')
    (tmp_path / "ok.py").write_text(f'def g():\n    """Doc."""\n    # long: a table\n{body}\n')
    (tmp_path / "short.py").write_text(f'def h():\n    """Doc."""\n{body[: body.rfind(chr(10))]}\n')
    found = long_functions(tmp_path)
    assert len(found) == 1 and " f (101 lines)" in found[0]
