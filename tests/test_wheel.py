"""ideagen as a user gets it from `pip install .` or `pipx install .`: a wheel, installed into
a fresh virtual environment outside the repository, run from another folder. Building and
checking the wheel is fast; installing and running it is marked slow (CI runs -m slow).

The wheel is built from a copy of the source (a build writes build/ and *.egg-info next to
its input, and this test leaves the checkout alone). The fresh environment has only ideagen;
its dependencies come from the test environment's site-packages through a .pth file, which
adds that folder to sys.path without running its .pth files (so not the editable install).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from testkit.ideas import IdeaWriter
from testkit.loopback import LoopbackServer

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "ideagen", "prompts", "template"]
CORPUS_FILE = REPO / "bench" / "data" / "ai-scientist-v1-ideas" / "templates__grokking__ideas.json"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = dist.glob("ideagen-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh environment with the wheel installed."""
    env_dir = tmp_path_factory.mktemp("env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dependencies = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "test_environment_dependencies.pth").write_text(dependencies + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def run(bin_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_wheel_carries_the_prompts_the_template_and_other_package_files(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for prompt in (REPO / "prompts").glob("*.txt"):
        assert f"ideagen/_prompts/{prompt.name}" in names
    for path in (REPO / "template").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert f"ideagen/_template/{path.relative_to(REPO / 'template')}" in names
    for path in (REPO / "ideagen").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            assert f"ideagen/{path.relative_to(REPO / 'ideagen')}" in names
    assert not any("__pycache__" in name or name.startswith("tests/") for name in names)


@pytest.mark.slow  # each command starts a fresh interpreter that imports torch: minutes under load
def test_the_installed_wheel_works_outside_the_checkout(installed: Path, elsewhere: Path):
    where = run(installed, elsewhere, "python", "-c", "import ideagen; print(ideagen.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), "not the checkout's"

    shown = run(installed, elsewhere, "ideagen", "template", "path")
    assert shown.returncode == 0, shown.stderr
    template = Path(shown.stdout.strip())
    assert template.is_relative_to(installed.parent)
    assert (template / "experiment.py").read_bytes() == (
        REPO / "template/experiment.py"
    ).read_bytes()

    scientist = elsewhere / "AI-Scientist"
    (scientist / "templates").mkdir(parents=True)
    # --no-baseline: rerunning run_0 trains the CNN for minutes, and is not about packaging
    done = run(
        installed, elsewhere, "ideagen", "template", "install", "--no-baseline", str(scientist)
    )
    assert done.returncode == 0, done.stderr
    copied = scientist / "templates" / "fashion_mnist"
    assert json.loads((copied / "prompt.json").read_text()) == json.loads(
        (REPO / "template" / "prompt.json").read_text()
    )
    assert (copied / "latex" / "template.tex").is_file()
    assert not (copied / "__init__.py").exists(), "the package marker stays in the package"

    ideas = shutil.copy(CORPUS_FILE, elsewhere / "ideas.json")
    checked = run(installed, elsewhere, "ideagen", "validate", str(ideas))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow  # loads the embedding model in the installed program
def test_the_installed_wheel_brainstorms_against_the_loopback_server(
    installed: Path, elsewhere: Path, tmp_path: Path
):
    with LoopbackServer() as server:
        server.responder = IdeaWriter(done_after=1)
        drafted = run(
            installed,
            elsewhere,
            "ideagen",
            "brainstorm",
            "--topic",
            "regularization",
            "-n",
            "2",
            "--rounds",
            "1",
            "--provider",
            "anthropic",
            "--out",
            "seed_ideas.json",
            ANTHROPIC_API_KEY="sk-test-wheel",
            ANTHROPIC_BASE_URL=server.anthropic_url,
            IDEAGEN_HOME=str(tmp_path / "home"),
        )
        purposes = {request.purpose for request in server.requests}
    assert drafted.returncode == 0, drafted.stdout + drafted.stderr
    ideas = json.loads((elsewhere / "seed_ideas.json").read_text())
    assert len(ideas) == 2 and all(idea["Name"] for idea in ideas)
    assert {"brainstorm-draft", "brainstorm-critique"} <= purposes
