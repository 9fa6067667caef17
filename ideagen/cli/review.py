"""`ideagen review`."""

from __future__ import annotations

import argparse

from ideagen.cli._common import not_built


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("review", help="(not built yet)")
    parser.set_defaults(handler=not_built("review"))
