"""The bundled FashionMNIST template against The AI Scientist v1 contract, and its commands.

The AI Scientist's environment is its requirements.txt (SakanaAI/AI-Scientist at 9dffdc4,
lines 8 and 12-13: matplotlib, torch, numpy; no torchvision), and it runs
`python experiment.py --out_dir=run_i` and `python plot.py` from the idea folder
(ai_scientist/perform_experiments.py, run_experiment line 39 and run_plotting line 91). So every
run here has torchvision made unimportable.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ideagen import fashion_data, template_folder
from ideagen.cli import main

TEMPLATE = template_folder.bundled_template_dir()
TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 50
METRICS = ("test_accuracy", "test_loss", "final_train_loss", "train_time")
SEEDS = 2  # the template's default: at least two, so the stderrs mean something


def write_learnable_data(root: Path) -> None:
    """Small FashionMNIST-shaped data a CNN can learn: class c is a bright bar at row 2c.

    The bar spans the full width, so the template's left-right flips keep the label right."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 2 * label + 2 : 2 * label + 6, :] = 230
        fashion_data.write_split(root, split, images, labels)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fashion_data")
    write_learnable_data(root)
    return root


@pytest.fixture
def template_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "idea"
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    return copy


@pytest.fixture(scope="module", autouse=True)
def no_torchvision(tmp_path_factory: pytest.TempPathFactory):
    """Every process this module starts lacks torchvision, as in The AI Scientist's
    environment: a folder first on PYTHONPATH makes `import torchvision` fail."""
    folder = tmp_path_factory.mktemp("block")
    (folder / "torchvision").mkdir()
    (folder / "torchvision" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torchvision' (blocked by the test)\")\n"
    )
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        yield folder


def test_the_blocker_really_blocks_torchvision() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import torchvision"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr


def run_python(
    args: list[str], cwd: Path, data_dir: Path, **env: str
) -> subprocess.CompletedProcess:
    environment = {**os.environ, "IDEAGEN_DATA_DIR": str(data_dir), "IDEAGEN_QUICK": "1", **env}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One short real training run, exactly as The AI Scientist launches it."""
    folder = tmp_path_factory.mktemp("quick") / "idea"
    shutil.copytree(TEMPLATE, folder)
    result = run_python(["experiment.py", "--out_dir=run_1"], folder, data_dir)
    assert result.returncode == 0, result.stderr
    return folder


def test_experiment_writes_the_contract_shape(quick_run: Path) -> None:
    info = json.loads((quick_run / "run_1" / "final_info.json").read_text())
    assert list(info) == ["FashionMNIST"]
    entry = info["FashionMNIST"]
    assert set(entry) == {"means", "stderrs", "final_info_dict"}
    for metric in METRICS:
        assert type(entry["means"][metric]) is float
        assert type(entry["stderrs"][metric]) is float
        values = entry["final_info_dict"][metric]
        assert len(values) == SEEDS
        assert entry["means"][metric] == pytest.approx(np.mean(values))
        # the standard error of the mean: sample std / sqrt(n), not / n
        assert entry["stderrs"][metric] == pytest.approx(np.std(values, ddof=1) / np.sqrt(SEEDS))
    assert entry["means"]["train_time"] > 0


def test_two_seeds_give_honest_nonzero_stderrs(quick_run: Path) -> None:
    """Each seed trains its own model on its own data order: the losses differ."""
    entry = json.loads((quick_run / "run_1" / "final_info.json").read_text())["FashionMNIST"]
    assert entry["stderrs"]["test_loss"] > 0
    assert entry["stderrs"]["final_train_loss"] > 0
    losses = entry["final_info_dict"]["final_train_loss"]
    assert losses[0] != losses[1]


def test_experiment_learns_from_the_data_in_the_data_dir(quick_run: Path) -> None:
    """The run really trains: on data with an easy signal it ends far above chance (10%)."""
    means = json.loads((quick_run / "run_1" / "final_info.json").read_text())["FashionMNIST"]
    assert means["means"]["test_accuracy"] > 0.5
    curves = json.loads((quick_run / "run_1" / "curves.json").read_text())
    assert [seed["seed"] for seed in curves] == list(range(SEEDS))
    for index, seed in enumerate(curves):
        assert seed["epoch"] == [1, 2]
        assert seed["test_accuracy"][-1] == means["final_info_dict"]["test_accuracy"][index]
        assert seed["train_loss"][-1] == means["final_info_dict"]["final_train_loss"][index]
        assert seed["train_loss"][1] < seed["train_loss"][0]


def test_experiment_is_deterministic_and_reads_the_default_cache_dir(
    quick_run: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Same seed, same result; without IDEAGEN_DATA_DIR it looks where `ideagen template data`
    puts the data by default (<user cache dir>/ideagen/fashionmnist)."""
    cache = tmp_path / "cache"
    shutil.copytree(data_dir, cache / "ideagen" / "fashionmnist")
    env = {key: value for key, value in os.environ.items() if key != "IDEAGEN_DATA_DIR"}
    env.update(XDG_CACHE_HOME=str(cache), IDEAGEN_QUICK="1")
    result = subprocess.run(
        [sys.executable, "experiment.py", "--out_dir=run_2"],
        cwd=quick_run,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    first = json.loads((quick_run / "run_1" / "final_info.json").read_text())["FashionMNIST"]
    second = json.loads((quick_run / "run_2" / "final_info.json").read_text())["FashionMNIST"]
    for metric in ("test_accuracy", "test_loss", "final_train_loss"):
        assert first["final_info_dict"][metric] == second["final_info_dict"][metric]


def test_experiment_without_data_says_how_to_get_it(template_copy: Path, tmp_path: Path) -> None:
    result = run_python(["experiment.py", "--out_dir=run_1"], template_copy, tmp_path / "nowhere")
    assert result.returncode != 0
    assert "ideagen template data" in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr


def test_scripts_import_only_what_the_ai_scientist_environment_has() -> None:
    """torch, numpy, matplotlib (its requirements.txt) and the standard library."""
    allowed = {"torch", "numpy", "matplotlib"} | set(sys.stdlib_module_names)
    for name in template_folder.SCRIPTS:
        tree = ast.parse((TEMPLATE / name).read_text())
        assert template_folder.required_imports(tree) <= allowed, name


def test_plot_writes_figures_and_skips_missing_runs(quick_run: Path, data_dir: Path) -> None:
    plot = quick_run / "plot.py"
    text = plot.read_text()
    edited = text.replace(
        '"run_0": "Baseline",',
        '"run_0": "Baseline",\n    "run_1": "Quick",\n    "run_9": "Never ran",',
    )
    assert edited != text
    plot.write_text(edited)
    result = run_python(["plot.py"], quick_run, data_dir)
    assert result.returncode == 0, result.stderr
    assert "skipping run_9" in result.stdout
    figures = {path.name for path in quick_run.glob("*.png")}
    assert {
        "test_accuracy_curves.png",
        "train_loss_curves.png",
        "final_test_accuracy.png",
    } <= figures


def test_bundled_template_passes_the_static_check() -> None:
    report = template_folder.check_template(TEMPLATE, static=True)
    assert report.problems == []
    assert any("6 valid ideas" in line for line in report.passed)


def test_shipped_baseline_is_a_real_full_run() -> None:
    info = json.loads((TEMPLATE / "run_0" / "final_info.json").read_text())["FashionMNIST"]
    curves = json.loads((TEMPLATE / "run_0" / "curves.json").read_text())
    assert info["means"]["test_accuracy"] >= 0.93
    assert len(curves) == len(info["final_info_dict"]["test_accuracy"]) == SEEDS
    assert [seed["test_accuracy"][-1] for seed in curves] == info["final_info_dict"][
        "test_accuracy"
    ]
    assert info["stderrs"]["test_accuracy"] > 0
    assert sorted(path.name for path in (TEMPLATE / "run_0").iterdir()) == [
        "curves.json",
        "final_info.json",
    ]


def problems_of(folder: Path) -> list[str]:
    return [
        str(problem) for problem in template_folder.check_template(folder, static=True).problems
    ]


def test_check_names_a_missing_file(template_copy: Path) -> None:
    (template_copy / "plot.py").unlink()
    assert problems_of(template_copy) == ["plot.py: missing (The AI Scientist needs it)"]


def test_check_names_a_missing_prompt_key(template_copy: Path) -> None:
    prompt = json.loads((template_copy / "prompt.json").read_text())
    del prompt["task_description"]
    (template_copy / "prompt.json").write_text(json.dumps(prompt))
    assert problems_of(template_copy) == ["prompt.json: task_description: is missing"]


def test_check_names_a_missing_bibliography_block(template_copy: Path) -> None:
    tex = template_copy / "latex" / "template.tex"
    text = tex.read_text()
    tex.write_text(re.sub(r"\\(begin|end)\{filecontents\}", "", text))
    problems = problems_of(template_copy)
    assert len(problems) == 1
    assert problems[0].startswith("latex/template.tex: no \\begin{filecontents}{references.bib}")


def test_check_names_missing_placeholders_and_graphicspath(template_copy: Path) -> None:
    tex = template_copy / "latex" / "template.tex"
    text = tex.read_text().replace("RESULTS HERE", "").replace("\\graphicspath{{../}}", "")
    tex.write_text(text)
    problems = problems_of(template_copy)
    assert "latex/template.tex: placeholder 'RESULTS HERE' is missing" in problems
    assert any("no \\graphicspath{{../}}" in problem for problem in problems)


def test_check_names_invalid_seed_ideas(template_copy: Path) -> None:
    seeds = json.loads((template_copy / "seed_ideas.json").read_text())
    seeds[2]["Interestingness"] = 11
    seeds[4]["Name"] = "Has Spaces"
    (template_copy / "seed_ideas.json").write_text(json.dumps(seeds, indent=4))
    problems = problems_of(template_copy)
    assert len(problems) == 2
    assert problems[0].startswith(
        "seed_ideas.json: entry 2 (neuroevolution_fashion_mnist): Interestingness: 11 is above 10"
    )
    assert problems[1].startswith("seed_ideas.json: entry 4 (Has Spaces): Name:")


def test_check_names_a_broken_baseline_result(template_copy: Path) -> None:
    (template_copy / "run_0" / "final_info.json").write_text('{"FashionMNIST": {"loss": 1}}')
    assert problems_of(template_copy) == [
        "run_0/final_info.json: FashionMNIST: has no 'means' object"
    ]


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real interpreter without torch, numpy or matplotlib: a venv with nothing installed."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def test_check_names_the_imports_the_given_interpreter_lacks(
    template_copy: Path, bare_python: Path, capsys
) -> None:
    """Before anything runs (no data needed): the template needs torch, numpy, matplotlib."""
    code = main(["template", "check", str(template_copy), "--python", str(bare_python)])
    assert code == 1
    out = capsys.readouterr().out
    python = str(bare_python)
    assert f"problem: experiment.py and plot.py: imports 'numpy', which {python} cannot" in out
    assert f"problem: experiment.py: imports 'torch', which {python} cannot import" in out
    assert f"problem: plot.py: imports 'matplotlib', which {python} cannot import" in out
    assert "'json'" not in out  # the standard library is there
    assert "problem: experiment.py: not run: fix the problems above first" in out
    assert not (template_copy / "run_1").exists()


def test_check_imports_counts_the_templates_own_modules_and_optional_imports(
    template_copy: Path, bare_python: Path
) -> None:
    experiment = template_copy / "experiment.py"
    experiment.write_text(
        "import helpers\ntry:\n    import torchvision\nexcept ImportError:\n    pass\n"
        "import torchaudio.functional\n" + experiment.read_text()
    )
    (template_copy / "helpers.py").write_text("")
    passed: list[str] = []
    problems = template_folder.check_imports(template_copy, sys.executable, passed)
    assert [str(problem) for problem in problems] == [
        f"experiment.py: imports 'torchaudio', which {sys.executable} cannot import"
        " (install it there)"
    ]


def test_check_passes_the_imports_for_this_environment(template_copy: Path) -> None:
    passed: list[str] = []
    assert template_folder.check_imports(template_copy, sys.executable, passed) == []
    prefix = f"{sys.executable} finds every import: "
    assert len(passed) == 1 and passed[0].startswith(prefix)
    assert {"torch", "numpy", "matplotlib"} <= set(passed[0].removeprefix(prefix).split(", "))


def test_check_reports_an_interpreter_that_does_not_run(template_copy: Path) -> None:
    problems = template_folder.check_imports(template_copy, "/nonexistent/python", [])
    assert len(problems) == 1
    assert str(problems[0]).startswith("--python: /nonexistent/python: cannot run it")


def test_check_command_runs_the_template_and_exits_zero(
    template_copy: Path, data_dir: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("IDEAGEN_DATA_DIR", str(data_dir))
    assert main(["template", "check", str(template_copy)]) == 0
    out = capsys.readouterr().out
    assert "ok: experiment.py --out_dir=run_1 ran" in out
    assert "ok: plot.py wrote" in out
    assert not (template_copy / "run_1").exists()  # it ran in a temporary copy


def test_check_command_reports_a_crashing_experiment(
    template_copy: Path, data_dir: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("IDEAGEN_DATA_DIR", str(data_dir))
    experiment = template_copy / "experiment.py"
    experiment.write_text(
        experiment.read_text().replace(
            "def train(seed):",
            "def train(seed):\n    raise ValueError('broken on purpose')",
        )
    )
    assert main(["template", "check", str(template_copy)]) == 1
    out = capsys.readouterr().out
    assert "problem: experiment.py:" in out
    assert "broken on purpose" in out


def test_path_command_prints_the_bundled_template(capsys) -> None:
    assert main(["template", "path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == TEMPLATE
    assert (TEMPLATE / "experiment.py").is_file()


def test_install_copies_refuses_to_overwrite_and_forces(tmp_path: Path, capsys) -> None:
    checkout = tmp_path / "AI-Scientist"
    (checkout / "templates").mkdir(parents=True)
    assert main(["template", "install", str(checkout), "--no-baseline"]) == 0
    installed = checkout / "templates" / "fashion_mnist"
    assert (installed / "experiment.py").read_text() == (TEMPLATE / "experiment.py").read_text()
    shipped = (TEMPLATE / "run_0" / "final_info.json").read_text()
    assert (installed / "run_0" / "final_info.json").read_text() == shipped
    out = capsys.readouterr().out
    assert "launch_scientist.py --experiment fashion_mnist" in out
    assert "stale" in out
    assert f"ideagen template baseline {installed}" in out

    (installed / "notes.txt").write_text("mine")
    assert main(["template", "install", str(checkout), "--no-baseline"]) == 2
    assert "already exists; add --force" in capsys.readouterr().err
    assert (installed / "notes.txt").exists()

    assert main(["template", "install", str(checkout), "--force", "--no-baseline"]) == 0
    assert not (installed / "notes.txt").exists()
    assert [p.name for p in (checkout / "templates").iterdir()] == ["fashion_mnist"]


def test_install_reruns_the_baseline_here_by_default(
    tmp_path: Path, data_dir: Path, monkeypatch, capfd
) -> None:
    """run_0 is replaced by a run on this machine (quick mode: 2 epochs), with progress shown."""
    monkeypatch.setenv("IDEAGEN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("IDEAGEN_QUICK", "1")
    checkout = tmp_path / "AI-Scientist"
    (checkout / "templates").mkdir(parents=True)
    assert main(["template", "install", str(checkout)]) == 0
    run_0 = checkout / "templates" / "fashion_mnist" / "run_0"
    info = json.loads((run_0 / "final_info.json").read_text())["FashionMNIST"]
    shipped = json.loads((TEMPLATE / "run_0" / "final_info.json").read_text())["FashionMNIST"]
    assert info["final_info_dict"]["train_time"] != shipped["final_info_dict"]["train_time"]
    assert [seed["epoch"] for seed in json.loads((run_0 / "curves.json").read_text())] == [
        [1, 2]
    ] * SEEDS
    out = capfd.readouterr().out
    assert "rerunning the baseline (run_0) on this machine" in out
    assert "seed 1 epoch 2/2" in out  # the run's own progress lines reach the terminal
    assert "FashionMNIST test_accuracy:" in out
    assert "launch_scientist.py --experiment fashion_mnist" in out


def test_install_without_data_keeps_the_copy_and_says_what_to_do(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("IDEAGEN_DATA_DIR", str(tmp_path / "nowhere"))
    checkout = tmp_path / "AI-Scientist"
    (checkout / "templates").mkdir(parents=True)
    assert main(["template", "install", str(checkout)]) == 2
    installed = checkout / "templates" / "fashion_mnist"
    shipped = (TEMPLATE / "run_0" / "final_info.json").read_text()
    assert (installed / "run_0" / "final_info.json").read_text() == shipped
    err = capsys.readouterr().err
    assert "baseline failed" in err
    assert "ideagen template data" in err
    assert f"ideagen template baseline {installed}" in err


def test_install_refuses_a_folder_that_is_not_a_checkout(tmp_path: Path, capsys) -> None:
    assert main(["template", "install", str(tmp_path)]) == 2
    assert "not an AI Scientist checkout" in capsys.readouterr().err


def test_baseline_keeps_the_old_run_0_when_the_run_fails(
    template_copy: Path, tmp_path: Path, capsys
) -> None:
    before = (template_copy / "run_0" / "final_info.json").read_text()
    (template_copy / "experiment.py").write_text("raise SystemExit('no data here')\n")
    assert main(["template", "baseline", str(template_copy)]) == 2
    assert "no data here" in capsys.readouterr().err
    assert (template_copy / "run_0" / "final_info.json").read_text() == before
    assert not (template_copy / ".run_0.partial").exists()


def test_data_command_accepts_verified_files_already_there(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    for split, per_class in (("train", 6000), ("test", 1000)):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        fashion_data.write_split(root, split, np.zeros((len(labels), 28, 28), np.uint8), labels)
    assert main(["template", "data", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "source: existing; train 60000, test 10000 images" in out


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_template_compiles_with_its_bibliography(quick_run: Path, data_dir: Path) -> None:
    """pdflatex + bibtex as The AI Scientist runs them, with plot.py's real figures."""
    result = run_python(["plot.py"], quick_run, data_dir)
    assert result.returncode == 0, result.stderr
    latex = quick_run / "latex"
    commands = [
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "template.tex"],
        ["bibtex", "template"],
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "template.tex"],
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "template.tex"],
    ]
    for command in commands:
        done = subprocess.run(command, cwd=latex, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]
    assert (latex / "template.pdf").stat().st_size > 10_000
    assert "lu2024aiscientist" in (latex / "template.bbl").read_text()
    log = (latex / "template.log").read_text(errors="replace")
    assert not re.search(r"Citation .* undefined", log)


@pytest.mark.slow
def test_full_baseline_run_on_the_real_data(template_copy: Path) -> None:
    """The real experiment.py on the real FashionMNIST (needs `ideagen template data`)."""
    try:
        fashion_data.verify(fashion_data.default_data_dir())
    except fashion_data.FashionDataError as exc:
        pytest.skip(f"FashionMNIST is not prepared: {exc}")
    env = {key: value for key, value in os.environ.items() if key != "IDEAGEN_QUICK"}
    result = subprocess.run(
        [sys.executable, "experiment.py", "--out_dir=run_1"],
        cwd=template_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((template_copy / "run_1" / "final_info.json").read_text())["FashionMNIST"]
    assert info["means"]["test_accuracy"] >= 0.93
    assert len(info["final_info_dict"]["test_accuracy"]) == SEEDS
    assert info["stderrs"]["test_loss"] > 0
