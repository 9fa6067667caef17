"""The bundled FashionMNIST template, and The AI Scientist v1 template contract.

`check_template` names every way a folder breaks the contract that The AI Scientist relies
on: the files it reads, the prompt keys, valid seed ideas, a LaTeX file its writeup step can
fill, and (unless static) a real `experiment.py --out_dir=run_i` run whose `final_info.json`
has the shape it parses, followed by `plot.py` producing figures.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ideagen import resources
from ideagen.ideafile import IdeaFileError, load_ideas
from ideagen.schema import Problem

TEMPLATE_NAME = "fashion_mnist"
QUICK_ENV = "IDEAGEN_QUICK"
REQUIRED_FILES = (
    "experiment.py",
    "plot.py",
    "prompt.json",
    "seed_ideas.json",
    "latex/template.tex",
    "run_0/final_info.json",
)
PROMPT_KEYS = ("system", "task_description")
LATEX_PLACEHOLDERS = (
    "TITLE HERE",
    "ABSTRACT HERE",
    "INTRO HERE",
    "RELATED WORK HERE",
    "BACKGROUND HERE",
    "METHOD HERE",
    "EXPERIMENTAL SETUP HERE",
    "RESULTS HERE",
    "CONCLUSIONS HERE",
)
FILECONTENTS_BIB = re.compile(
    r"\\begin\{filecontents\*?\}(\[[^\]]*\])?\{references\.bib\}(.*?)\\end\{filecontents\*?\}",
    re.DOTALL,
)
GRAPHICSPATH = re.compile(r"\\graphicspath\{\s*\{\.\./\}")
# The folder is copied into every idea folder; anything this big belongs outside it.
MAX_FILE_BYTES = 5 * 1024 * 1024
IGNORED_NAMES = ("__pycache__", "*.pyc", ".ipynb_checkpoints")
SCRIPTS = ("experiment.py", "plot.py")
# Run by the interpreter under test: which of the top-level modules in argv it cannot find.
FIND_MISSING = (
    "import importlib.util, json, sys;"
    "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))"
)


class TemplateToolError(Exception):
    """A template command cannot go on; the message says why and what to do."""


@dataclass
class CheckReport:
    folder: Path
    problems: list[Problem] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    means: dict[str, dict[str, float]]
    seconds: float


def bundled_template_dir() -> Path:
    """The FashionMNIST template shipped with ideagen."""
    return resources.template_dir()


def install(dest: Path, *, name: str = TEMPLATE_NAME, force: bool = False) -> Path:
    """Copy the bundled template into an AI Scientist checkout's `templates/` folder.

    `dest` is the checkout (the folder holding `templates/`) or its `templates/` folder."""
    dest = Path(dest)
    if (dest / "templates").is_dir():
        templates = dest / "templates"
    elif dest.name == "templates" and dest.is_dir():
        templates = dest
    else:
        raise TemplateToolError(
            f"{dest}: not an AI Scientist checkout (no templates/ folder in it);"
            " give the folder that holds launch_scientist.py and templates/"
        )
    target = templates / name
    if target.exists() and not force:
        raise TemplateToolError(f"{target}: already exists; add --force to replace it")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=templates))
    try:
        copy = staging / name
        # __init__.py only marks the bundled folder as a package (see resources.py)
        skipped = shutil.ignore_patterns(*IGNORED_NAMES, "__init__.py")
        shutil.copytree(bundled_template_dir(), copy, ignore=skipped)
        if target.exists():
            shutil.rmtree(target)
        os.replace(copy, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def run_experiment(
    folder: Path,
    out_dir: str,
    *,
    python: str = sys.executable,
    quick: bool = False,
    timeout_s: float | None = None,
    echo: bool = False,
) -> RunResult:
    """Run `python experiment.py --out_dir=OUT` in `folder`, as The AI Scientist does."""
    env = dict(os.environ)
    if quick:
        env[QUICK_ENV] = "1"
    started = time.monotonic()
    try:
        result = subprocess.run(
            [python, "experiment.py", f"--out_dir={out_dir}"],
            cwd=folder,
            env=env,
            stdout=None if echo else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise TemplateToolError(
            f"{folder / 'experiment.py'}: still running after {timeout_s:.0f} s"
        ) from None
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise TemplateToolError(
            f"{folder / 'experiment.py'}: exited with status {result.returncode}: "
            + _tail(result.stderr)
        )
    info_path = folder / out_dir / "final_info.json"
    means, problems = read_final_info(info_path)
    if problems:
        raise TemplateToolError("; ".join(str(problem) for problem in problems))
    return RunResult(folder / out_dir, means, seconds)


def baseline(folder: Path, *, python: str = sys.executable) -> RunResult:
    """Run the template's baseline into `run_0/`, replacing the old one only on success."""
    folder = Path(folder)
    if not (folder / "experiment.py").is_file():
        raise TemplateToolError(f"{folder}: no experiment.py (is this a template folder?)")
    partial = ".run_0.partial"
    shutil.rmtree(folder / partial, ignore_errors=True)
    try:
        result = run_experiment(folder, partial, python=python, echo=True)
        shutil.rmtree(folder / "run_0", ignore_errors=True)
        os.replace(folder / partial, folder / "run_0")
    finally:
        shutil.rmtree(folder / partial, ignore_errors=True)
    return RunResult(folder / "run_0", result.means, result.seconds)


def read_final_info(path: Path) -> tuple[dict[str, dict[str, float]], list[Problem]]:
    """The means of a `final_info.json`, and every way it breaks the contract's shape."""
    label = _label(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, [Problem(label, "missing (experiment.py must write it)")]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, [Problem(label, f"not valid JSON: {exc}")]
    if not isinstance(data, dict) or not data:
        return {}, [Problem(label, 'expected {"<dataset>": {"means": {...}, ...}}')]
    problems: list[Problem] = []
    means: dict[str, dict[str, float]] = {}
    for dataset, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("means"), dict):
            problems.append(Problem(label, "has no 'means' object", field=dataset))
            continue
        numbers = {}
        for metric, value in entry["means"].items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(
                    Problem(
                        label, f"is {value!r}, expected a number", field=f"{dataset}.means.{metric}"
                    )
                )
            elif not math.isfinite(value):
                problems.append(Problem(label, "is not finite", field=f"{dataset}.means.{metric}"))
            else:
                numbers[metric] = float(value)
        if not numbers and not problems:
            problems.append(Problem(label, "'means' is empty", field=dataset))
        if not any("acc" in metric.lower() for metric in numbers):
            problems.append(Problem(label, "no accuracy metric among the means", field=dataset))
        means[dataset] = numbers
    return means, problems


def check_template(
    folder: Path,
    *,
    static: bool = False,
    python: str = sys.executable,
    quick: bool = True,
    timeout_s: float = 900,
    log: Callable[[str], None] = lambda _message: None,
) -> CheckReport:
    """Check a template folder against The AI Scientist v1 contract; name every problem."""
    folder = Path(folder)
    report = CheckReport(folder)
    if not folder.is_dir():
        report.problems.append(Problem(str(folder), "no such folder"))
        return report
    static_checks = (
        _check_files,
        _check_prompt,
        _check_seed_ideas,
        _check_latex,
        _check_python_files,
        _check_baseline,
        _check_sizes,
    )
    for check in static_checks:
        report.problems.extend(check(folder, report.passed))
    report.problems.extend(check_imports(folder, python, report.passed))
    if static:
        return report
    if any(
        p.file == "--python" or any(name in p.file for name in SCRIPTS) for p in report.problems
    ):
        report.problems.append(Problem("experiment.py", "not run: fix the problems above first"))
        return report
    log("running experiment.py and plot.py in a temporary copy ...")
    report.problems.extend(_check_run(folder, report.passed, python, quick, timeout_s))
    return report


def _check_files(folder: Path, passed: list[str]) -> list[Problem]:
    problems = [
        Problem(name, "missing (The AI Scientist needs it)")
        for name in REQUIRED_FILES
        if not (folder / name).is_file()
    ]
    if not problems:
        passed.append("all required files present")
    return problems


def _check_prompt(folder: Path, passed: list[str]) -> list[Problem]:
    path = folder / "prompt.json"
    if not path.is_file():
        return []
    try:
        prompt = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Problem("prompt.json", f"not valid JSON: {exc}")]
    if not isinstance(prompt, dict):
        return [Problem("prompt.json", "expected a JSON object with system and task_description")]
    problems = []
    for key in PROMPT_KEYS:
        if key not in prompt:
            problems.append(Problem("prompt.json", "is missing", field=key))
        elif not isinstance(prompt[key], str) or not prompt[key].strip():
            problems.append(Problem("prompt.json", "must be a non-empty string", field=key))
    if not problems:
        passed.append("prompt.json has system and task_description")
    return problems


def _check_seed_ideas(folder: Path, passed: list[str]) -> list[Problem]:
    path = folder / "seed_ideas.json"
    if not path.is_file():
        return []
    try:
        loaded = load_ideas(path)
    except IdeaFileError as exc:
        return [Problem("seed_ideas.json", str(exc).removeprefix(f"{path}: "))]
    problems = [
        Problem("seed_ideas.json", p.message, p.index, p.name, p.field)
        for p in loaded.problems
        if p.severity == "error"
    ]
    if not loaded.entries:
        problems.append(Problem("seed_ideas.json", "has no ideas; the AI Scientist imitates them"))
    if not problems:
        passed.append(f"seed_ideas.json: {len(loaded.ideas)} valid ideas")
    return problems


def _check_latex(folder: Path, passed: list[str]) -> list[Problem]:
    path = folder / "latex" / "template.tex"
    if not path.is_file():
        return []
    label = "latex/template.tex"
    text = path.read_text(encoding="utf-8", errors="replace")
    problems = []
    if not FILECONTENTS_BIB.search(text):
        problems.append(
            Problem(
                label,
                "no \\begin{filecontents}{references.bib} ... \\end{filecontents} block"
                " (the writeup step adds citations there)",
            )
        )
    if not GRAPHICSPATH.search(text):
        problems.append(Problem(label, "no \\graphicspath{{../}} (figures live one folder up)"))
    for placeholder in LATEX_PLACEHOLDERS:
        if placeholder not in text:
            problems.append(Problem(label, f"placeholder {placeholder!r} is missing"))
    if not problems:
        passed.append("latex/template.tex: filecontents bibliography, graphicspath, placeholders")
    return problems


def _check_python_files(folder: Path, passed: list[str]) -> list[Problem]:
    problems = []
    trees = {}
    for name in ("experiment.py", "plot.py"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            trees[name] = ast.parse(path.read_text(encoding="utf-8"), filename=name)
        except (SyntaxError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, f"does not parse: {exc}"))
    if "experiment.py" in trees and "out_dir" not in ast.unparse(trees["experiment.py"]):
        problems.append(Problem("experiment.py", "does not take --out_dir"))
    if "plot.py" in trees and not _has_dict_assignment(trees["plot.py"], "labels"):
        problems.append(
            Problem("plot.py", "has no top-level `labels = {...}` dict (the AI Scientist edits it)")
        )
    if trees and not problems:
        passed.append("experiment.py and plot.py parse; plot.py has a labels dict")
    return problems


def check_imports(folder: Path, python: str, passed: list[str]) -> list[Problem]:
    """The modules experiment.py and plot.py import that `python` cannot find.

    Asked of that interpreter (find_spec, nothing imported) in the template folder, so the
    template's own helper modules count; imports guarded by `except ImportError` are optional."""
    needed: dict[str, list[str]] = {}
    for name in SCRIPTS:
        path = folder / name
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=name)
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue  # a missing or broken script is reported by the other checks
        for module in sorted(required_imports(tree)):
            needed.setdefault(module, []).append(name)
    if not needed:
        return []
    try:
        result = subprocess.run(
            [python, "-c", FIND_MISSING, *needed],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        missing = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        return [Problem("--python", f"{python}: cannot run it to check the imports: {exc}")]
    if missing is None:
        detail = _tail(result.stderr)
        return [Problem("--python", f"{python}: cannot check the imports with it: {detail}")]
    problems = [
        Problem(
            " and ".join(needed[module]),
            f"imports {module!r}, which {python} cannot import (install it there)",
        )
        for module in missing
    ]
    if not problems:
        passed.append(f"{python} finds every import: {', '.join(needed)}")
    return problems


def required_imports(tree: ast.Module) -> set[str]:
    """Top-level names of absolute imports, except those under `except ImportError`."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            optional.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    modules = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    return caught is None or any(
        isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError", "Exception")
        for n in names
    )


def _check_baseline(folder: Path, passed: list[str]) -> list[Problem]:
    path = folder / "run_0" / "final_info.json"
    if not path.is_file():
        return []
    _means, problems = read_final_info(path)
    relabelled = [Problem("run_0/final_info.json", p.message, field=p.field) for p in problems]
    if not relabelled:
        passed.append("run_0/final_info.json has the contract's shape")
    return relabelled


def _check_sizes(folder: Path, passed: list[str]) -> list[Problem]:
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            size_mb = path.stat().st_size / 2**20
            problems.append(
                Problem(
                    str(path.relative_to(folder)),
                    f"is {size_mb:.1f} MiB; the folder is copied into every idea folder,"
                    " keep data outside it",
                )
            )
    if not problems:
        passed.append(f"no file over {MAX_FILE_BYTES // 2**20} MiB")
    return problems


def _check_run(
    folder: Path, passed: list[str], python: str, quick: bool, timeout_s: float
) -> list[Problem]:
    with tempfile.TemporaryDirectory(prefix="ideagen-check-") as scratch:
        copy = Path(scratch) / folder.resolve().name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(*IGNORED_NAMES, "*.png"))
        try:
            result = run_experiment(copy, "run_1", python=python, quick=quick, timeout_s=timeout_s)
        except TemplateToolError as exc:
            return [Problem("experiment.py", str(exc).replace(str(copy) + os.sep, ""))]
        metrics = ", ".join(
            f"{metric}={value:.4g}"
            for means in result.means.values()
            for metric, value in means.items()
        )
        passed.append(f"experiment.py --out_dir=run_1 ran in {result.seconds:.0f} s: {metrics}")
        return _check_plot(copy, passed, python, timeout_s)


def _check_plot(copy: Path, passed: list[str], python: str, timeout_s: float) -> list[Problem]:
    try:
        result = subprocess.run(
            [python, "plot.py"],
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return [Problem("plot.py", f"still running after {timeout_s:.0f} s")]
    if result.returncode != 0:
        return [
            Problem("plot.py", f"exited with status {result.returncode}: {_tail(result.stderr)}")
        ]
    figures = sorted(path.name for path in copy.glob("*.png"))
    if not figures:
        return [Problem("plot.py", "wrote no .png file into the current folder")]
    passed.append(f"plot.py wrote {', '.join(figures)}")
    return []


def _has_dict_assignment(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            if any(isinstance(target, ast.Name) and target.id == name for target in node.targets):
                return True
    return False


def _label(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no error output)"
