"""Small helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import sys

from ideagen.store import Store


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(args.home)


def not_built(name: str):
    def handler(args: argparse.Namespace) -> int:
        print(f"ideagen {name}: not built yet", file=sys.stderr)
        return 2

    return handler
