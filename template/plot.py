"""Figures for the runs named in `labels`: learning curves and final test accuracy.

Run it from the experiment folder (`python plot.py`); it reads run_*/final_info.json and
run_*/curves.json written by experiment.py and saves .png files into the current folder.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")  # no display needed; we only write files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# The runs to plot and their legend names. Only runs listed here are plotted:
# add one entry per run_i folder you want in the figures.
labels = {
    "run_0": "Baseline",
}

DATASET = "FashionMNIST"


def load_run(run):
    """The run's per-seed curves and final means, or None (with a message) if absent."""
    curves_path = os.path.join(run, "curves.json")
    info_path = os.path.join(run, "final_info.json")
    if not os.path.isfile(curves_path) or not os.path.isfile(info_path):
        print(f"skipping {run}: no {run}/curves.json or {run}/final_info.json")
        return None
    with open(curves_path) as f:
        curves = json.load(f)
    with open(info_path) as f:
        info = json.load(f)[DATASET]
    return {"curves": curves, "means": info["means"], "stderrs": info.get("stderrs", {})}


def mean_and_stderr(curves, key):
    """Mean and standard error over seeds, per epoch (runs may differ in length)."""
    length = min(len(seed_curves[key]) for seed_curves in curves)
    values = np.array([seed_curves[key][:length] for seed_curves in curves], dtype=float)
    epochs = np.array(curves[0]["epoch"][:length])
    # standard error of the mean over seeds, as in final_info.json (sample std / sqrt(n))
    stderr = values.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0 * values[0]
    return epochs, values.mean(axis=0), stderr


def plot_curve(runs, key, ylabel, title, filename, scale=1.0):
    plt.figure(figsize=(8, 5))
    for i, (run, data) in enumerate(runs.items()):
        epochs, mean, stderr = mean_and_stderr(data["curves"], key)
        color = plt.get_cmap("tab10")(i % 10)
        plt.plot(epochs, mean * scale, marker="o", ms=3, color=color, label=labels[run])
        plt.fill_between(
            epochs, (mean - stderr) * scale, (mean + stderr) * scale, color=color, alpha=0.2
        )
    plt.title(title)
    plt.xlabel("Epoch")
    plt.ylabel(ylabel)
    plt.grid(True, alpha=0.3)
    plt.legend()
    plt.tight_layout()
    plt.savefig(filename, dpi=150)
    plt.close()
    print(f"wrote {filename}")


def plot_final_accuracy(runs, filename):
    names = [labels[run] for run in runs]
    accuracy = [100 * data["means"]["test_accuracy"] for data in runs.values()]
    stderr = [100 * data["stderrs"].get("test_accuracy", 0.0) for data in runs.values()]
    plt.figure(figsize=(max(5, 1.4 * len(runs)), 5))
    bars = plt.bar(names, accuracy, yerr=stderr, capsize=4, color="tab:blue")
    plt.bar_label(bars, fmt="%.2f")
    # Accuracies differ in the last few percent; a zero-based axis would hide the differences.
    low = min(accuracy) - 2
    plt.ylim(max(0, low), min(100, max(accuracy) + 1))
    plt.title(f"Final test accuracy on {DATASET}")
    plt.ylabel("Test accuracy (%)")
    plt.xticks(rotation=20, ha="right")
    plt.tight_layout()
    plt.savefig(filename, dpi=150)
    plt.close()
    print(f"wrote {filename}")


runs = {}
for run in labels:
    data = load_run(run)
    if data is not None:
        runs[run] = data

if not runs:
    print("nothing to plot: none of the runs in `labels` has results")
else:
    plot_curve(
        runs,
        "test_accuracy",
        "Test accuracy (%)",
        f"Test accuracy per epoch on {DATASET}",
        "test_accuracy_curves.png",
        scale=100,
    )
    plot_curve(
        runs,
        "train_loss",
        "Training loss (mean over the epoch)",
        f"Training loss per epoch on {DATASET}",
        "train_loss_curves.png",
    )
    plot_curve(
        runs, "test_loss", "Test loss", f"Test loss per epoch on {DATASET}", "test_loss_curves.png"
    )
    plot_final_accuracy(runs, "final_test_accuracy.png")
