"""Imports point down: no program imports another (DESIGN.md, rule 10), read from the source with `ast`.

Two kinds of module have a `python -m` entry. A task (`snipjax/tasks/`) is library code, the builder of what
it hands the loop, whose entry is the one line `loop.cli(train_and_evaluate)`. A tool is nothing but a
command line. Tasks are peers: none imports another, and the layers below them import none. The only
modules that import a task are the tools whose job is the very step a task's run executes (compiling it for
a target, timing it) and the `python -m snipjax.train` shim; moving the builders below the tasks instead
would leave `snipjax/tasks/` empty shells. Nothing imports a tool.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TASKS = {"snipjax.tasks.pretrain", "snipjax.tasks.property", "snipjax.tasks.sr.train"}
TOOLS = {"snipjax.train", "snipjax.compile", "snipjax.convert", "snipjax.bench.__main__", "snipjax.data.__main__",
         "snipjax.data.worker", "snipjax.tasks.sr.srbench"}
TASK_USERS = {"snipjax.train", "snipjax.compile", "snipjax.bench.train"}
TOOL_PACKAGES = ("snipjax.bench.",)  # a tool's own modules: imported within it alone


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted((ROOT / "snipjax").rglob("*.py"))}


def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def imported_modules(tree: ast.Module) -> set[str]:
    """The snipjax modules a module imports anywhere (lazy imports in functions included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name in MODULES}


def main_block(tree: ast.Module) -> ast.If | None:
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'":
            return node
    return None


def test_every_program_is_a_task_or_a_tool():
    programs = {name for name, tree in trees().items() if main_block(tree) or name.endswith(".__main__")}
    assert programs == TASKS | TOOLS, "classify the new program here: a task of the loop or a tool"


def test_no_program_is_imported_by_another_module_except_task_builders_by_their_tools():
    wrong = []
    for name, tree in trees().items():
        for imported in imported_modules(tree):
            inside = [p for p in TOOL_PACKAGES if imported.startswith(p)]
            if imported in TOOLS or any(not name.startswith(p) for p in inside):
                wrong.append(f"{name} imports the tool {imported}")
            if imported in TASKS and name not in TASK_USERS:
                wrong.append(f"{name} imports the task {imported}: what tasks share belongs below them")
    assert not wrong, "\n".join(wrong)


def test_a_task_program_is_its_builder_and_the_shared_command_line():
    for name, tree in trees().items():
        if name in TASKS:
            block = main_block(tree)
            assert [ast.unparse(statement) for statement in block.body] == ["loop.cli(train_and_evaluate)"], name
    shim = trees()["snipjax.train"]  # `python -m snipjax.train`: the pretraining task under its short name
    assert all(isinstance(node, (ast.Expr, ast.ImportFrom, ast.If)) for node in shim.body)
