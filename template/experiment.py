"""Train a compact CNN on FashionMNIST and report its test accuracy over several seeds.

The AI Scientist runs it as `python experiment.py --out_dir=run_i` from this folder and
reads run_i/final_info.json. plot.py reads run_i/curves.json (one entry per seed, one value
per epoch). All settings are at the top; edit them here rather than adding arguments.
It needs only torch, numpy and the standard library (The AI Scientist's environment has no
torchvision), and reads the data as the four raw IDX files that `ideagen template data` writes.
"""

import argparse
import json
import math
import multiprocessing
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- settings
dataset = "FashionMNIST"
seeds = [0, 1]  # one training run per seed; final_info.json has the mean and stderr over them
epochs = 6
batch_size = 256
max_lr = 0.2  # peak of the one-cycle schedule
warmup_fraction = 0.25  # share of the steps spent raising the learning rate to max_lr
momentum = 0.9
weight_decay = 5e-4
label_smoothing = 0.1
flip_augmentation = True  # clothes look the same mirrored left-right
flip_at_test_time = True  # predict from each test image and its mirror image, averaged
mixed_precision = True  # bfloat16 autocast, only where the hardware runs it natively
widths = (16, 32, 32, 64)  # channels of the four conv layers (28 -> 14 -> 7 -> 7 -> 3 pixels)
eval_batch_size = 2000
train_subset = None  # None: all 60,000 training images; an int: the first N (for quick runs)
test_subset = None

# IDEAGEN_QUICK=1 makes a short run for checking that the script works (not for results).
if os.environ.get("IDEAGEN_QUICK") == "1":
    epochs, batch_size, max_lr, train_subset, test_subset = 2, 64, 0.1, 1000, 500

# The data lives outside this folder (it is copied for every idea), where `ideagen template
# data` puts it: $IDEAGEN_DATA_DIR, else ~/.cache/ideagen/fashionmnist ($XDG_CACHE_HOME honoured).
data_dir = os.environ.get("IDEAGEN_DATA_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ideagen", "fashionmnist"
)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# On a CPU the seeds train side by side, one process each, sharing the cores: small
# convolutions use one core far better than two, so this is about twice as fast as one
# seed after the other. Each process re-reads this file, so change settings up here.
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
workers = min(len(seeds), cores)
if device.type == "cpu":
    torch.set_num_threads(max(1, cores // workers))


def cpu_runs_bf16():
    """True when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX; Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# bfloat16 roughly halves the work per step where the hardware runs it natively; elsewhere
# it would be emulated (slow), so those machines train in float32.
if device.type == "cuda":
    use_bf16 = mixed_precision and torch.cuda.is_bf16_supported()
else:
    use_bf16 = mixed_precision and cpu_runs_bf16()
# channels_last lets oneDNN run convolutions without layout conversions on the CPU (about
# twice as fast here) and uses tensor-core-friendly layouts on GPUs.
memory_format = torch.channels_last


# ----------------------------------------------------------------------------- data
def read_idx(name):
    """One raw IDX file (torchvision's uncompressed layout) as a uint8 tensor."""
    path = os.path.join(data_dir, "FashionMNIST", "raw", name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SystemExit(
            f"FashionMNIST is not in {data_dir} ({path} is missing).\n"
            "Run `ideagen template data` or set IDEAGEN_DATA_DIR to a folder that has it."
        ) from None
    ndim = data[3]  # header: two zero bytes, the type (0x08: unsigned byte), ndim, then sizes
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    return torch.from_numpy(array.copy())


def to_inputs(images, mean, std):
    """uint8 images -> normalized float tensor (n, 1, 28, 28) on the device."""
    x = images.to(device).float().div_(255).sub_(mean).div_(std).unsqueeze(1)
    return x.contiguous(memory_format=memory_format)


train_images = read_idx("train-images-idx3-ubyte")[:train_subset]
train_labels = read_idx("train-labels-idx1-ubyte")[:train_subset].long()
test_images = read_idx("t10k-images-idx3-ubyte")[:test_subset]
test_labels = read_idx("t10k-labels-idx1-ubyte")[:test_subset].long()
# Normalize with FashionMNIST's own training statistics (not MNIST's).
pixel_mean = train_images.float().div(255).mean().item()
pixel_std = train_images.float().div(255).std().item()
x_train = to_inputs(train_images, pixel_mean, pixel_std)
y_train = train_labels.to(device)
x_test = to_inputs(test_images, pixel_mean, pixel_std)
y_test = test_labels.to(device)


# ----------------------------------------------------------------------------- model
def conv_block(in_channels, out_channels, pool=True):
    """3x3 conv -> (2x2 max pool) -> batch norm -> ReLU.

    Pooling before batch norm and ReLU lets them work on a quarter of the values, which
    saves about a quarter of the training time on a CPU at little cost in accuracy."""
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)]  # BN has a bias
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self, widths=widths, num_classes=10):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.features = nn.Sequential(
            # A 4x4 convolution with stride 2 halves the image at once: a quarter of the work
            # of a 3x3 convolution and pooling at 28x28, the costliest layer on a CPU.
            nn.Conv2d(1, c1, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            conv_block(c1, c2),
            conv_block(c2, c3, pool=False),  # extra depth where it is cheapest: at 7x7
            conv_block(c3, c4),
        )
        # Lazy: its input size is found on the first call, so the feature layers can change.
        self.classifier = nn.LazyLinear(num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ----------------------------------------------------------------------------- training
def logits(model, x):
    """Logits in float32, computed under bfloat16 autocast when use_bf16."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        return model(x).float()


def evaluate(model):
    """Mean test loss and accuracy over the whole test set, in eval mode."""
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x_test), eval_batch_size):
            x = x_test[start : start + eval_batch_size]
            y = y_test[start : start + eval_batch_size]
            log_probs = logits(model, x).log_softmax(dim=1)
            if flip_at_test_time:
                mirrored = x.flip(3).contiguous(memory_format=memory_format)
                mirrored_log_probs = logits(model, mirrored).log_softmax(dim=1)
                # log of the mean of the two probabilities, without underflow to log(0)
                log_probs = torch.logaddexp(log_probs, mirrored_log_probs) - math.log(2)
            total_loss += F.nll_loss(log_probs, y, reduction="sum").item()
            correct += (log_probs.argmax(dim=1) == y).sum().item()
    model.train()
    return total_loss / len(x_test), correct / len(x_test)


def train(seed):
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    model = Net().to(device)
    with torch.no_grad():  # one eval-mode call sizes the lazy layer (BN statistics untouched)
        model.eval()(x_test[:1])
    model.train().to(memory_format=memory_format)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=max_lr, momentum=momentum, nesterov=True, weight_decay=weight_decay
    )
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    # One-cycle: a short warm-up to a large learning rate, then a long anneal to near zero.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch, pct_start=warmup_fraction
    )
    curves = {"epoch": [], "train_loss": [], "test_loss": [], "test_accuracy": [], "elapsed_s": []}
    started = time.time()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(x_train), device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step
        for start in range(0, len(x_train), batch_size):
            batch = order[start : start + batch_size]
            x, y = x_train[batch], y_train[batch]
            if flip_augmentation:
                flip = torch.rand(len(x), device=device, generator=generator) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            x = x.contiguous(memory_format=memory_format)  # indexing may drop the layout
            loss = F.cross_entropy(logits(model, x), y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()  # the scheduler steps after the optimizer, once per batch
            scheduler.step()
            loss_sum += loss.detach() * len(batch)
        train_loss = loss_sum.item() / len(x_train)
        test_loss, test_accuracy = evaluate(model)
        elapsed = time.time() - started
        for key, value in zip(
            curves, (epoch, train_loss, test_loss, test_accuracy, elapsed), strict=True
        ):
            curves[key].append(value)
        print(
            f"seed {seed} epoch {epoch}/{epochs}: train loss {train_loss:.4f}, "
            f"test loss {test_loss:.4f}, test accuracy {100 * test_accuracy:.2f}%, {elapsed:.1f} s",
            flush=True,
        )
    final = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "final_train_loss": train_loss,
        "train_time": time.time() - started,
        "num_parameters": float(sum(p.numel() for p in model.parameters())),
    }
    return final, {"seed": seed, **curves}


def train_all(seeds):
    """(final metrics, curves) per seed; on a CPU each seed trains in its own process."""
    if device.type == "cuda" or workers == 1:
        return [train(seed) for seed in seeds]
    # spawn: a fresh interpreter per seed, safe with PyTorch's thread pools (fork is not)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(train, seeds)


# ----------------------------------------------------------------------------- main
if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Train a compact CNN on FashionMNIST.")
    parser.add_argument("--out_dir", type=str, default="run_0", help="where results go")
    out_dir = parser.parse_args().out_dir
    os.makedirs(out_dir, exist_ok=True)
    precision = "bfloat16 autocast" if use_bf16 else "float32"
    print(
        f"{dataset} on {device}, {len(seeds)} seeds ({torch.get_num_threads()} threads each,"
        f" {precision})",
        flush=True,
    )

    results, all_curves = zip(*train_all(seeds), strict=True)
    final_info_dict = {key: [result[key] for result in results] for key in results[0]}
    means = {key: float(np.mean(values)) for key, values in final_info_dict.items()}
    # Standard error of the mean: sample std / sqrt(n); zero for a single seed.
    stderrs = {
        key: float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
        for key, values in final_info_dict.items()
    }
    final_info = {dataset: {"means": means, "stderrs": stderrs, "final_info_dict": final_info_dict}}
    with open(os.path.join(out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2)
    with open(os.path.join(out_dir, "curves.json"), "w") as f:
        json.dump(list(all_curves), f)
    print(
        f"test accuracy {100 * means['test_accuracy']:.2f}% ± {100 * stderrs['test_accuracy']:.2f}"
        f" (stderr over {len(seeds)} seeds) -> {out_dir}/final_info.json"
    )
