"""The shape of the code: the engine runs without the console (importing all of core and worktrees
loads no Textual), agent-side commands stay light, and only worktrees/git.py starts git."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import corral.core
import corral.worktrees


def _modules(package: object) -> list[str]:
    """Every module of `package`, subpackages included (`__main__` runs a program: left out)."""
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    name = package.__name__  # type: ignore[attr-defined]
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(".".join((name, *parts)))
    return found


def test_core_and_worktrees_never_import_textual() -> None:
    modules = _modules(corral.core) + _modules(corral.worktrees)
    assert "corral.core.engine.scheduler" in modules
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'corral.tui')))\n"
    code += "print(bad)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_agent_side_client_stays_light() -> None:
    """`corral heartbeat` must not pay for pydantic, GitPython, rich, Textual or the MCP SDK
    (which only `corral mcp` loads) at start-up."""
    code = (
        "import sys\n"
        "from corral.core import entry\n"
        "from corral.core.agent import client\n"
        "from corral.core.agent import heartbeat_command\n"
        "from corral.core.cli import main\n"
        "heavy = sorted(m for m in ('pydantic', 'git', 'rich', 'textual', 'psutil', 'typing', 'dataclasses',\n"
        "                           'mcp', 'mcp_types', 'anyio')\n"
        "               if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_only_the_ssh_parts_load_asyncssh() -> None:
    """The engine, the console and the local runtimes never pay for asyncssh (and its
    cryptography): only `corral serve --ssh` and a plan with `runtime = "ssh"` load it."""
    code = (
        "import sys\n"
        "from corral.core.engine import runner, scheduler\n"
        "from corral.core.plan import preflight\n"
        "from corral.core.runtime import registry\n"
        "from corral.tui import app\n"
        "registry.factory('local'), registry.factory('sandbox')\n"
        "print('asyncssh' in sys.modules)\n"
        "from corral.core.runtime import ssh\n"
        "print('asyncssh' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == ["False", "True"]


def test_the_engine_starts_without_the_end_of_run_modules() -> None:
    """Merge, report and summary code load on the preload thread, not before the first agent."""
    code = (
        "import sys\n"
        "from corral.core.engine import runner, scheduler, warmup\n"
        "print(sorted(m for m in warmup.LATER_MODULES if m in sys.modules))\n"
        "warmup.preload().join(timeout=60)\n"
        "print(sorted(m for m in warmup.LATER_MODULES if m not in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split("\n")[:2] == ["[]", "[]"]


# --- Who starts git -------------------------------------------------------------------------
# worktrees/git.py runs git with the options and environment of worktrees/safety.py (hooks,
# fsmonitor, pager and the repository's own filter and merge drivers off: docs/reliability.md S6), and
# worktrees/plumbing.py adds the few variables plumbing needs. Any other place that starts git
# skips that guard, and an agent that plants a driver in the shared config gets its program run
# by whoever runs that git: the engine, or the person viewing the console.

GIT_RUNNERS = frozenset({"worktrees/git.py", "worktrees/plumbing.py"})
"""The only modules (relative to the corral package) that may start a git process."""

PROCESS_STARTERS = frozenset(
    {
        *(f"subprocess.{n}" for n in ("run", "Popen", "call", "check_call", "check_output")),
        *(f"subprocess.{n}" for n in ("getoutput", "getstatusoutput")),
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "os.system",
        "os.popen",
        "os.posix_spawn",
        "os.posix_spawnp",
        "pty.spawn",
        *(f"os.exec{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
        *(f"os.spawn{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
    }
)
"""Functions that start a program, by their module's name."""
LOOP_STARTERS = frozenset({"subprocess_exec", "subprocess_shell"})
"""Event-loop methods that start a program (`loop.subprocess_exec(...)`)."""


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


class _GitStarts(ast.NodeVisitor):
    """Finds, in one module, every way it could start git itself (see `git_starts`)."""

    def __init__(self, tree: ast.Module) -> None:
        self.found: list[tuple[int, str]] = []
        self.aliases: dict[str, str] = {}
        """Local name -> dotted name it was imported as (`from subprocess import run as r`)."""
        self.bindings: dict[str, list[ast.expr]] = {}
        """Every value assigned to a name anywhere in the module."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.aliases[alias.asname or alias.name.partition(".")[0]] = (
                        alias.name if alias.asname else alias.name.partition(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.bindings.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign | ast.NamedExpr)
                and node.value is not None
                and isinstance(node.target, ast.Name)
            ):
                self.bindings.setdefault(node.target.id, []).append(node.value)

    def _qualified(self, node: ast.expr) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        resolved = self.aliases.get(head, head)
        return f"{resolved}.{rest}" if rest else resolved

    def names_git(self, node: ast.expr | None, depth: int = 0) -> bool:
        """Whether `node`, as a program or an argument vector, starts with the program git."""
        if node is None or depth > 8:
            return False
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            program = node.value.strip().split(" ", 1)[0]
            return program == "git" or program.endswith("/git")
        if isinstance(node, ast.JoinedStr):
            return bool(node.values) and self.names_git(node.values[0], depth + 1)
        if isinstance(node, ast.List | ast.Tuple):
            return bool(node.elts) and self.names_git(node.elts[0], depth + 1)
        if isinstance(node, ast.Starred):
            return self.names_git(node.value, depth + 1)
        if isinstance(node, ast.BinOp):
            return self.names_git(node.left, depth + 1)
        if isinstance(node, ast.Call):  # list(GIT), shlex.split("git diff"), ...
            return bool(node.args) and self.names_git(node.args[0], depth + 1)
        if isinstance(node, ast.Name):
            return any(self.names_git(v, depth + 1) for v in self.bindings.get(node.id, []))
        return False

    @staticmethod
    def _gitpython(func: ast.expr, name: str | None) -> bool:
        """`repo.git.status()`, `git.Git(path)`, `Git().execute(...)`; corral's own modules aside."""
        raw = _dotted(func)
        if raw is None or name is None or name.startswith("corral."):
            return False
        parts = raw.split(".")
        return "git" in parts[1:-1] or parts[-1] == "Git" or name.startswith("git.")

    def visit_Import(self, node: ast.Import) -> None:
        if any(alias.name == "git" or alias.name.startswith("git.") for alias in node.names):
            self.found.append((node.lineno, "imports GitPython (every Repo call starts git)"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if not node.level and (module == "git" or module.startswith("git.")):
            self.found.append((node.lineno, "imports GitPython (every Repo call starts git)"))
        elif any(alias.name == "open_repo" for alias in node.names):
            self.found.append((node.lineno, "opens a GitPython Repo (its calls start git)"))

    def visit_List(self, node: ast.List) -> None:
        self._argv(node)
        self.generic_visit(node)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        self._argv(node)
        self.generic_visit(node)

    def _argv(self, node: ast.List | ast.Tuple) -> None:
        first = node.elts[0] if node.elts else None
        if isinstance(first, ast.Constant) and first.value == "git":
            self.found.append((node.lineno, 'builds a command line that starts "git"'))

    def visit_Call(self, node: ast.Call) -> None:
        name = self._qualified(node.func)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name in PROCESS_STARTERS or method in LOOP_STARTERS:
            program = [*node.args, *(k.value for k in node.keywords if k.arg != "env")]
            if any(self.names_git(arg) for arg in program):
                self.found.append((node.lineno, f"starts git with {name or method}"))
        elif self._gitpython(node.func, name):
            self.found.append((node.lineno, f"calls GitPython's git ({name})"))
        self.generic_visit(node)


def git_starts(source: str) -> list[tuple[int, str]]:
    """(line, what) for each place in `source` that starts git, or could, by itself."""
    tree = ast.parse(source)
    finder = _GitStarts(tree)
    finder.visit(tree)
    return sorted(set(finder.found))


def _corral_sources() -> list[tuple[str, Path]]:
    import corral

    root = Path(corral.__file__).parent
    found = []
    for package in ("core", "worktrees", "tui"):
        for path in sorted((root / package).rglob("*.py")):
            found.append((f"{package}/{path.relative_to(root / package)}", path))
    return found


def test_only_the_git_runners_start_git() -> None:
    sources = _corral_sources()
    assert any(name == "tui/ops.py" for name, _ in sources)
    assert any(name.startswith("tui/screens/") for name, _ in sources)
    offenders = [
        f"{name}:{line}: {what}"
        for name, path in sources
        if name not in GIT_RUNNERS
        for line, what in git_starts(path.read_text())
    ]
    assert not offenders, (
        "only worktrees/git.py and worktrees/plumbing.py may start git (they apply the "
        "repository-driver guard of worktrees/safety.py); route these through worktrees/git.py:\n"
        + "\n".join(offenders)
    )


def test_the_git_runners_are_found_by_the_scan() -> None:
    """The scan sees the runner's own start of git: it would see a copy elsewhere."""
    import corral.worktrees.git

    assert git_starts(Path(corral.worktrees.git.__file__).read_text())


@pytest.mark.parametrize(
    "source",
    [
        'import subprocess\nsubprocess.run(["git", "status"])',
        'import subprocess\nGIT = ["git", "-c", "x=y"]\nsubprocess.run([*GIT, "-C", p, "diff"])',
        'from subprocess import Popen as P\nP(["/usr/bin/git", "log"])',
        'import subprocess\ncmd = "git"\nsubprocess.check_output([cmd, "log"])',
        'import os\nos.system("git status")',
        'import os\nos.execvp("git", ["git", "status"])',
        'import asyncio\nasyncio.create_subprocess_exec("git", "status")',
        'async def f(loop):\n    await loop.subprocess_exec(proto, "git", "log")',
        'import subprocess\nsubprocess.run(f"git {args}", shell=True)',
        "import git\nrepo = git.Repo(p)",
        "from git import Repo",
        "def f(repo):\n    return repo.git.status()",
        "def f(self):\n    return self.repo.git.diff('HEAD')",
        "def f(Git):\n    return Git(path).execute(argv)",
        "from corral.worktrees.git import open_repo",
        'def f():\n    return spawn(["git", "fetch"])',
    ],
)
def test_the_scan_finds_each_way_to_start_git(source: str) -> None:
    assert git_starts(source), source


@pytest.mark.parametrize(
    "source",
    [
        'import subprocess\nsubprocess.run(["sh", "-c", "echo git"])',
        "import subprocess\nsubprocess.run(list(spec.command), cwd=workspace)",
        "from corral.worktrees.git import run_git\nrun_git(repo, 'status')",
        "from corral.worktrees import git\ngit.run_git(repo, 'status')",
        'x = "the git directory"',
        'import os\nos.environ["GIT_DIR"]',
    ],
)
def test_the_scan_leaves_other_programs_alone(source: str) -> None:
    assert git_starts(source) == [], source
