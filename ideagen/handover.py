"""Handing reviewed ideas to The AI Scientist: where its launcher reads them, and how to run it.

Facts from SakanaAI/AI-Scientist relied on here:
- `launch_scientist.py` runs from the checkout's root and reads the template folder
  `templates/<--experiment>` (line 341); with `--skip-idea-generation`, `generate_ideas`
  loads `<template>/ideas.json` (ai_scientist/generate_ideas.py, lines 84-92).
- Without `--skip-novelty-check` it checks every idea that has no `novel` key and skips those
  that have one (generate_ideas.py, lines 420-422); then it runs only the ideas whose
  `idea["novel"]` is true (launch_scientist.py, line 363), which raises KeyError on an idea
  without the key when the check was skipped.
- It rewrites `<template>/ideas.json` itself (launch_scientist.py, lines 360-361), so the
  file it replaces is worth keeping.
- `--model` defaults to claude-3-5-sonnet-20240620 (launch_scientist.py, line 51).
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ideagen.schema import Idea

IDEAS_FILENAME = "ideas.json"
DEFAULT_SCIENTIST_MODEL = "claude-3-5-sonnet-20240620"


class HandoverError(Exception):
    """The folder named with --into cannot take the ideas; the message says why."""


@dataclass(frozen=True)
class Handover:
    template_dir: Path
    ideas_path: Path
    backup: Path | None


def target_for(template_dir: Path) -> Path:
    """Where The AI Scientist reads the ideas of this template, checked before any work."""
    if not template_dir.is_dir():
        raise HandoverError(
            f"{template_dir}: no such template folder (expected AI_SCIENTIST_DIR/templates/NAME; "
            "install one with `ideagen template install`)"
        )
    if not (template_dir / "experiment.py").is_file():
        raise HandoverError(f"{template_dir}: not a template folder (it has no experiment.py)")
    return template_dir / IDEAS_FILENAME


def back_up(path: Path, now: datetime | None = None) -> Path | None:
    """Copy an existing file to `NAME.bak-YYYYmmdd-HHMMSS[-N]`, never replacing a backup."""
    if not path.exists():
        return None
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        backup = path.with_name(f"{path.name}.bak-{stamp}{suffix}")
        try:
            with path.open("rb") as source, backup.open("xb") as copy:
                shutil.copyfileobj(source, copy)
        except FileExistsError:
            number += 1
            continue
        shutil.copymode(path, backup)
        return backup


def launch_command(template_dir: Path, ideas: list[Idea], model: str) -> str:
    """The command that runs these ideas, from the AI Scientist checkout that holds the
    template. `--skip-novelty-check` only when every idea carries a `novel` verdict."""
    root = template_dir.resolve().parent.parent
    parts = [
        "python",
        "launch_scientist.py",
        "--experiment",
        template_dir.name,
        "--skip-idea-generation",
    ]
    if all_have_verdicts(ideas):
        parts.append("--skip-novelty-check")
    parts += ["--model", model]
    return f"cd {shlex.quote(str(root))} && {shlex.join(parts)}"


def all_have_verdicts(ideas: list[Idea]) -> bool:
    return bool(ideas) and all(idea.novel is not None for idea in ideas)


def next_steps(
    ideas: list[Idea], written: Path, handover: Handover | None, model: str
) -> list[str]:
    """What to do next, as lines for the terminal."""
    runnable = sum(1 for idea in ideas if idea.novel is True)
    unchecked = sum(1 for idea in ideas if idea.novel is None)
    lines = []
    if handover is None:
        lines.append(
            f"next: copy {written} to AI_SCIENTIST_DIR/templates/NAME/{IDEAS_FILENAME} "
            "(or rerun with --into AI_SCIENTIST_DIR/templates/NAME), then run The AI Scientist "
            "from its folder:"
        )
        flags = " --skip-novelty-check" if all_have_verdicts(ideas) else ""
        lines.append(
            "  python launch_scientist.py --experiment NAME --skip-idea-generation"
            f"{flags} --model {model}"
        )
    else:
        if handover.backup is not None:
            lines.append(f"kept the previous {IDEAS_FILENAME} as {handover.backup}")
        lines.append("next, run The AI Scientist on them:")
        lines.append(f"  {launch_command(handover.template_dir, ideas, model)}")
    if unchecked:
        lines.append(
            f"{unchecked} of {len(ideas)} ideas have no `novel` verdict: run The AI Scientist "
            'WITHOUT --skip-novelty-check so it checks them (with the flag, idea["novel"] '
            "raises KeyError)"
        )
    else:
        lines.append(
            f"{runnable} of {len(ideas)} ideas have novel: true and will be run "
            "(The AI Scientist skips the others)"
        )
    return lines
