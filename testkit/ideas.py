"""A scripted idea-writing model for the loopback server, and a small template to write for.

`IdeaWriter` answers ideagen's brainstorm calls as a model would: a new idea from IDEA_BANK
for each draft, a critique (with the done flag) for each critique round. It tells the calls
apart by their purpose header, never by prompt wording.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from testkit.loopback import ReceivedRequest, Reply

DRAFT = "brainstorm-draft"
CRITIQUE = "brainstorm-critique"
PLAN = "brainstorm-plan"
REPAIR = "brainstorm-repair"

# Distinct experiments on different parts of a small image classifier, so that the "model"
# can propose many ideas that are not duplicates of each other.
IDEA_BANK = [
    (
        "label_smoothing_sweep",
        "Label Smoothing Strength and Calibration",
        "Replace the cross-entropy loss with label-smoothed cross-entropy at smoothing 0.0, 0.05, "
        "0.1 and 0.2; measure test accuracy and expected calibration error.",
    ),
    (
        "cosine_warm_restarts",
        "Cosine Learning Rate with Warm Restarts",
        "Swap the step learning-rate schedule for cosine annealing with warm restarts every two "
        "epochs; compare convergence speed and final test accuracy.",
    ),
    (
        "mixup_regularization",
        "Mixup Between Training Images",
        "Train on convex combinations of pairs of images and their labels with a Beta(0.2, 0.2) "
        "mixing weight; report test accuracy and the train-test gap.",
    ),
    (
        "width_depth_tradeoff",
        "Trading Width for Depth in a Small CNN",
        "Keep the parameter count fixed while moving capacity from channel width to extra "
        "convolution layers; chart accuracy against depth.",
    ),
    (
        "batch_size_scaling",
        "Batch Size and the Linear Scaling Rule",
        "Train with batch sizes 32 to 512, scaling the learning rate linearly; record accuracy and "
        "wall-clock time per epoch.",
    ),
    (
        "dropout_schedule",
        "Scheduled Dropout That Rises During Training",
        "Increase the dropout probability linearly from 0 to 0.5 over training instead of a fixed "
        "rate; measure overfitting and final accuracy.",
    ),
    (
        "weight_decay_adamw",
        "Decoupled Weight Decay Strength",
        "Use AdamW with decoupled weight decay from 0 to 0.1 and compare the test loss curves and "
        "the norm of the final weights.",
    ),
    (
        "random_erasing",
        "Random Erasing Augmentation",
        "Erase a random rectangle of each training image with probability 0.5; measure robustness "
        "to occluded test images and clean accuracy.",
    ),
    (
        "gradient_clipping",
        "Gradient Norm Clipping Thresholds",
        "Clip the global gradient norm at 0.5, 1, 5 and no clipping; track training stability and "
        "the number of loss spikes.",
    ),
    (
        "evolved_lr_schedule",
        "Evolving Learning Rate Schedules",
        "Encode a piecewise-linear learning rate schedule as a genome and run a small genetic "
        "algorithm over eight individuals for five generations, scoring each by validation "
        "accuracy after one epoch.",
    ),
    (
        "pruning_magnitude",
        "Magnitude Pruning After Training",
        "Remove the smallest 50, 70 and 90 percent of weights after training and fine-tune for "
        "one epoch; plot accuracy against sparsity.",
    ),
    (
        "knowledge_distillation_self",
        "Self-Distillation Across Generations",
        "Train a second copy of the network on the softened outputs of the first at temperature "
        "4; compare student and teacher accuracy.",
    ),
    (
        "activation_functions",
        "GELU, SiLU and ReLU Compared",
        "Swap the ReLU activations for GELU and SiLU throughout the network and measure accuracy "
        "and training time.",
    ),
    (
        "class_imbalance",
        "Robustness to Class Imbalance",
        "Subsample three classes to ten percent of their training images and compare loss "
        "reweighting against oversampling on per-class recall.",
    ),
    (
        "early_stopping_patience",
        "Early Stopping Patience",
        "Stop training when validation loss has not improved for 1, 2 or 4 epochs; report "
        "accuracy and epochs used.",
    ),
    (
        "batchnorm_placement",
        "Batch Normalization Before or After the Activation",
        "Insert batch normalization before versus after each ReLU and compare training speed and "
        "accuracy.",
    ),
    (
        "input_noise_robustness",
        "Training With Gaussian Input Noise",
        "Add Gaussian noise of standard deviation 0.1 to 0.3 to training inputs and evaluate "
        "accuracy on noisy and clean test images.",
    ),
    (
        "optimizer_comparison",
        "SGD With Momentum Versus Adam",
        "Train with SGD plus Nesterov momentum and with Adam at tuned learning rates; compare "
        "final accuracy and sharpness of the minimum.",
    ),
    (
        "kernel_size_study",
        "Large Versus Small Convolution Kernels",
        "Replace the 3x3 kernels with 5x5 and 7x7 kernels at equal parameter budget and measure "
        "accuracy per parameter.",
    ),
    (
        "stochastic_weight_averaging",
        "Stochastic Weight Averaging",
        "Average the weights over the last three epochs with a constant learning rate and "
        "compare test accuracy to the final weights.",
    ),
    (
        "curriculum_by_loss",
        "Curriculum Learning Ordered by Loss",
        "Order training images from low to high loss of a one-epoch model and feed easy examples "
        "first; measure convergence speed.",
    ),
    (
        "global_average_pooling",
        "Global Average Pooling Instead of Dense Layers",
        "Replace the fully connected layers with global average pooling and a linear classifier; "
        "compare parameters and accuracy.",
    ),
    (
        "seed_variance",
        "How Much Do Random Seeds Matter",
        "Run the baseline with ten random seeds and measure the spread of test accuracy and the "
        "ranking stability of two architectures.",
    ),
    (
        "confusion_pairs",
        "Targeted Augmentation for Confused Classes",
        "Find the two most confused class pairs and apply extra augmentation only to them; "
        "measure the change in their pairwise error.",
    ),
]


# The parts a plan may give an angle (ideagen.brainstorm.PlanPart), in the order the writer
# hands them out.
PLAN_PARTS = ("data", "architecture", "optimisation", "regularisation", "evaluation")


def idea_json(name: str, title: str, experiment: str) -> dict:
    """An idea entry as a model writes it, with fixed ratings."""
    return {
        "Name": name,
        "Title": title,
        "Experiment": experiment,
        "Interestingness": 7,
        "Feasibility": 8,
        "Novelty": 6,
    }


class IdeaWriter:
    """The loopback responder: writes ideas from IDEA_BANK, critiques as scripted.

    `done_after`: the critique round in which it says done. `drafts`: optional list of
    (name, title, experiment) to hand out before the bank (for duplicates, infeasible...).
    """

    def __init__(self, done_after: int = 2, drafts: list[tuple[str, str, str]] | None = None):
        self.done_after = done_after
        self.queue = list(drafts or []) + list(IDEA_BANK)
        self.lock = threading.Lock()
        self.drafts = 0
        self.critiques = 0
        self.plans = 0

    def __call__(self, request: ReceivedRequest) -> Reply:
        first_user = next(text for role, text in request.messages if role == "user")
        if request.purpose == DRAFT:
            with self.lock:
                self.drafts += 1
                name, title, experiment = self.queue.pop(0)
            return Reply(json.dumps(idea_json(name, title, experiment)))
        if request.purpose == CRITIQUE:
            with self.lock:
                self.critiques += 1
            round_number = int(re.search(r"round (\d+) of at most", first_user).group(1))
            shown = json.loads(first_user[first_user.index("{") : first_user.index("}") + 1])
            done = round_number >= self.done_after
            if not done:
                shown["Experiment"] += f" Repeat with {round_number + 2} seeds."
            critique = {"critique": "The measurement could be sharper.", "done": done}
            return Reply(json.dumps(critique | shown))
        if request.purpose == PLAN:
            with self.lock:
                self.plans += 1
                upcoming = self.queue[: int(re.search(r"List (\d+) ", first_user).group(1))]
            angles = [
                {"part": PLAN_PARTS[index % len(PLAN_PARTS)], "angle": title}
                for index, (_, title, _) in enumerate(upcoming)
            ]
            return Reply(json.dumps({"angles": angles}))
        return Reply("I only write ideas.")


# The settings block of a realistic training script, so that ideas about training can name
# what they change (the gate refuses ideas that name nothing of the template).
SETTINGS = """
seeds = [0, 1]
epochs = 6
batch_size = 256
learning_rate = 0.1
momentum = 0.9
weight_decay = 5e-4
dropout = 0.0
label_smoothing = 0.0
max_grad_norm = None
kernel_size = 3
widths = (16, 32, 64)
flip_augmentation = True


def augment(images):
    return torch.where(torch.rand(len(images)) < 0.5, images.flip(-1), images)


def make_optimizer(model, steps_per_epoch):
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum,
                                nesterov=True, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2 * steps_per_epoch)
    return optimizer, schedule


loss_function = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
final_info = {"test_accuracy": 0.0, "test_loss": 0.0, "train_time": 0.0, "num_parameters": 0}
"""


def make_template(folder: Path) -> Path:
    """A template folder whose experiment.py is long enough for prompt caching to apply."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.json").write_text(
        json.dumps(
            {
                "system": "You are an ambitious AI researcher.",
                "task_description": "You are given a script that trains a small CNN on "
                "FashionMNIST and reports test accuracy.",
            }
        )
    )
    layers = "\n".join(
        f"        self.conv{i} = nn.Conv2d({16 * i}, {16 * (i + 1)}, 3, padding=1)"
        for i in range(1, 120)
    )
    (folder / "experiment.py").write_text(
        "import torch\nimport torch.nn as nn\nfrom torchvision import datasets\n\n"
        "# trains on FashionMNIST from torchvision\n"
        f"{SETTINGS}\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"{layers}\n"
    )
    (folder / "seed_ideas.json").write_text("[]")
    return folder
