"""What the model is told about an experiment template, ordered for prompt caching.

The large part that never changes during a run (the task description and the template's
`experiment.py`) is rendered once as the `context` prefix the providers cache; the parts that
change (topic, the ideas that already exist) go into the messages after it, as one-line
summaries so prompts stay small however many ideas exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ideagen import template_folder
from ideagen.ideafile import unusable_json
from ideagen.resources import render_prompt
from ideagen.schema import Idea

# Enough one-line summaries to steer the model away from what exists, few enough that the
# prompt does not grow without bound on a file with hundreds of ideas.
MAX_SUMMARIES = 60
MAX_SUMMARY_CHARS = 140


class TemplateError(Exception):
    """The template folder cannot be used; the message names the file and what is wrong."""


def bundled_template_dir() -> Path:
    """The FashionMNIST template shipped with ideagen."""
    return template_folder.bundled_template_dir()


@dataclass(frozen=True)
class TemplateContext:
    folder: Path
    name: str
    system: str
    task_description: str
    experiment_code: str

    def cached_prefix(self) -> str:
        """The large unchanging block every call of a run shares, first in the prompt."""
        return render_prompt(
            "brainstorm_context",
            template_name=self.name,
            task_description=self.task_description.strip(),
            experiment_code=self.experiment_code.rstrip(),
        )


def load_template(folder: str | Path) -> TemplateContext:
    folder = Path(folder)
    if not folder.is_dir():
        raise TemplateError(f"{folder}: no such template folder")
    prompt_file = folder / "prompt.json"
    try:
        prompt = json.loads(prompt_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"{prompt_file}: missing (a template needs prompt.json)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{prompt_file}: not valid JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise TemplateError(f"{prompt_file}: {unusable_json(exc)}") from None
    if not isinstance(prompt, dict):
        raise TemplateError(f"{prompt_file}: expected a JSON object with system, task_description")
    for key in ("system", "task_description"):
        if not isinstance(prompt.get(key), str) or not prompt[key].strip():
            raise TemplateError(f"{prompt_file}: {key}: missing or not a non-empty string")
    experiment_file = folder / "experiment.py"
    try:
        code = experiment_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(
            f"{experiment_file}: missing (a template needs experiment.py)"
        ) from None
    except UnicodeDecodeError:
        raise TemplateError(f"{experiment_file}: not UTF-8 text") from None
    folder = folder.resolve()
    bundled = folder == bundled_template_dir().resolve()
    return TemplateContext(
        folder=folder,
        name=template_folder.TEMPLATE_NAME if bundled else folder.name,
        system=prompt["system"].strip(),
        task_description=prompt["task_description"],
        experiment_code=code,
    )


def summarize_ideas(ideas: list[Idea], limit: int = MAX_SUMMARIES) -> str:
    """One line per idea, newest last; when there are more than `limit`, the newest ones."""
    if not ideas:
        return "(none yet)"
    shown = ideas[-limit:]
    lines = [_shorten(f"- {idea.summary()}") for idea in shown]
    if len(ideas) > len(shown):
        lines.insert(0, f"({len(ideas) - len(shown)} older ideas not listed)")
    return "\n".join(lines)


def _shorten(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= MAX_SUMMARY_CHARS else line[: MAX_SUMMARY_CHARS - 3] + "..."
