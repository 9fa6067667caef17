"""Example ideas of the right grain, shown to the model before it drafts.

Two kinds: the template's own seed ideas (what its author wants more of), and a few ideas
The AI Scientist wrote for its own templates (prompts/brainstorm_examples.json, Apache-2.0,
see prompts/NOTICE-ai-scientist-ideas.md), which show how concrete a seed idea is: the code
it changes by name, the runs it compares, the numbers it reports. A small model imitates
what it is shown, so the gate refuses drafts that restate any of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from pydantic import BaseModel

from ideagen.ideafile import IdeaFileError, load_ideas
from ideagen.resources import PROMPTS_PACKAGE, render_prompt
from ideagen.schema import Idea
from ideagen.template_prompt import TemplateContext

EXAMPLES_FILE = "brainstorm_examples.json"
# Seeds shown to the model: the shortest, since they are in every call's prompt (and a small
# model copies what it is shown).
SEEDS_SHOWN = 1


class ExternalExample(BaseModel):
    template: str
    source_file: str
    idea: dict


@cache
def ai_scientist_examples() -> tuple[tuple[str, Idea], ...]:
    """(template name, idea) for each shipped example."""
    text = files(PROMPTS_PACKAGE).joinpath(EXAMPLES_FILE).read_text(encoding="utf-8")
    examples = [ExternalExample.model_validate(item) for item in json.loads(text)["examples"]]
    return tuple((example.template, Idea.from_entry(example.idea)) for example in examples)


def template_seeds(template: TemplateContext) -> list[Idea]:
    """The valid ideas of the template's seed_ideas.json ([] when it has none or it is
    unreadable: seeds help, but a template without them is still usable)."""
    try:
        return load_ideas(template.folder / "seed_ideas.json", missing_ok=True).ideas
    except IdeaFileError:
        return []


def gate_examples(template: TemplateContext) -> list[Idea]:
    """Every idea a draft must not restate: the template's seeds and the shipped examples."""
    return template_seeds(template) + [idea for _, idea in ai_scientist_examples()]


def few_shot_block(template: TemplateContext, seeds: Sequence[Idea]) -> str:
    """The examples as the model sees them, early in the cached prefix (a local model's context
    window may cut the end of a long prefix, which is the template's code). `seeds`: those of
    the template's seeds that may be shown in full; the shortest is."""
    shown = sorted(seeds, key=lambda idea: len(idea.Experiment))[:SEEDS_SHOWN]
    return render_prompt(
        "brainstorm_examples",
        template_name=template.name,
        template_seeds="\n".join(_shown(idea) for idea in shown)
        or "(none shown here: the list of existing ideas names them)",
        other_examples="\n".join(
            f"[{name}] {_shown(idea)}" for name, idea in ai_scientist_examples()
        ),
    )


def _shown(idea: Idea) -> str:
    return json.dumps({"Title": idea.Title, "Experiment": idea.Experiment}, ensure_ascii=False)
