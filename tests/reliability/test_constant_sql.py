"""No SQL is built from input: every statement festmon sends is a constant of the source."""

from __future__ import annotations

import ast
from pathlib import Path

import festmon_tui

PACKAGE = Path(festmon_tui.__file__).parent
DB = PACKAGE / "db"
# asyncpg methods whose first argument is SQL text.
SQL_METHODS = {
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "fetchmany",
    "cursor",
    "prepare",
    "copy_from_query",
}
# The reviewed exceptions: (file relative to the package, enclosing function, argument source).
ALLOWED = {
    # The migration files shipped inside the package, read from disk: not input.
    ("db/migrations.py", "migrate", "f.sql"),
    # CREATE / DROP DATABASE take no parameters; the name is festmon's own, quoted as an
    # identifier ("" doubled) on the line before.
    ("db/simulation/demo.py", "prepare_demo_database", "f'DROP DATABASE IF EXISTS {quoted}'"),
    ("db/simulation/demo.py", "prepare_demo_database", "f'CREATE DATABASE {quoted}'"),
    # asyncpg's own reset query (UNLISTEN, advisory unlock, RESET ALL), run on release.
    ("db/connect.py", "_reset", "reset_query"),
}


def _module_constants(tree: ast.Module, path: Path) -> set[str]:
    """Module-level names bound to string constants (or dicts / concatenations of them),
    including names imported from other festmon_tui.db modules that are constants there."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if _constant_text(node.value, names):
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("festmon_tui.db"):
            source = PACKAGE.parent / Path(*(node.module or "").split("."))
            source = source.with_suffix(".py") if source.with_suffix(".py").exists() else source
            if source.suffix == ".py":
                theirs = _module_constants(ast.parse(source.read_text()), source)
                names |= {a.asname or a.name for a in node.names if a.name in theirs}
    return names


def _constant_text(node: ast.expr, constants: set[str]) -> bool:
    """A string literal, a known constant, a concatenation or dict of those."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant_text(node.left, constants) and _constant_text(node.right, constants)
    if isinstance(node, ast.Dict):
        return all(v is not None and _constant_text(v, constants) for v in node.values)
    if isinstance(node, ast.Subscript):  # ACTION_SQL[action]: a constant dict, any key
        return _constant_text(node.value, constants)
    return False


def _sql_calls(
    tree: ast.Module,
) -> list[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    found: list[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef | None]] = []

    def visit(node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in SQL_METHODS
                and child.args
            ):
                found.append((child, function))
            visit(child, inner)

    visit(tree, None)
    return found


def _passes_constants(tree: ast.Module, function: str, position: int, constants: set[str]) -> bool:
    """Every call of `function` (a method or function of this module) passes a constant there."""
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == function)
            or (isinstance(node.func, ast.Name) and node.func.id == function)
        )
    ]
    return bool(calls) and all(
        len(call.args) > position and _constant_text(call.args[position], constants)
        for call in calls
    )


def test_every_statement_in_the_db_package_is_constant_text() -> None:
    problems: list[str] = []
    checked = 0
    for path in sorted(DB.rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = _module_constants(tree, path)
        relative = path.relative_to(PACKAGE).as_posix()
        for call, function in _sql_calls(tree):
            checked += 1
            argument = call.args[0]
            if _constant_text(argument, constants):
                continue
            name = function.name if function is not None else "<module>"
            if (relative, name, ast.unparse(argument)) in ALLOWED:
                continue
            # A helper that receives the SQL as a parameter (DetectionRepository._call): every
            # caller in the module must hand it a constant.
            if function is not None and isinstance(argument, ast.Name):
                params = [a.arg for a in function.args.args]
                if argument.id in params:
                    position = params.index(argument.id) - (1 if params[0] == "self" else 0)
                    if _passes_constants(tree, function.name, position, constants):
                        continue
            problems.append(f"{relative}:{call.lineno} {name}: {ast.unparse(argument)[:80]}")
    assert checked > 50, "the check found too few statements: is it still looking?"
    assert problems == [], "SQL built at run time (use $n parameters):\n" + "\n".join(problems)


def test_only_the_db_package_sends_sql() -> None:
    senders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if DB in path.parents:
            continue
        for call, _ in _sql_calls(ast.parse(path.read_text())):
            senders.append(f"{path.relative_to(PACKAGE)}:{call.lineno}")
    assert senders == []
