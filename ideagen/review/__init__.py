"""Reviewing idea files before the AI Scientist spends money on them.

- `lint`: what a template cannot do (other data, pretrained weights, people, long runs,
  extra command-line arguments); `lint_idea` is also used while brainstorming.
- `judge`: independent per-idea scores against a written rubric, and a pairwise tournament.
- `novelty`: literature search online (OpenAlex, Semantic Scholar) or in a local corpus.
- `pipeline`: the steps in order; `report`: the HTML report and the on-screen table.
"""

from ideagen.review.lint import LintFlag, lint_idea

__all__ = ["LintFlag", "lint_idea"]
