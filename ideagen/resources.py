"""The files ideagen ships besides its code: the prompt texts and the bundled template.

In the repository they are the top-level folders prompts/ and template/; setup.py maps them
into the package as `ideagen._prompts` and `ideagen._template`, so a wheel carries them and an
editable install reads the checkout's files in place. Everything reads them through here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from string import Template

PROMPTS_PACKAGE = "ideagen._prompts"
TEMPLATE_PACKAGE = "ideagen._template"


def prompt_text(name: str) -> str:
    """The text of prompts/NAME.txt as written."""
    return files(PROMPTS_PACKAGE).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def render_prompt(name: str, **values: object) -> str:
    """prompts/NAME.txt with its $placeholders filled."""
    return Template(prompt_text(name)).substitute({key: str(v) for key, v in values.items()})


def template_dir() -> Path:
    """The folder of the FashionMNIST template shipped with ideagen."""
    folder = files(TEMPLATE_PACKAGE)
    # Callers copy and run the template as a folder; pip and pipx always unpack wheels.
    if not isinstance(folder, Path):
        raise RuntimeError(f"ideagen is installed in a way that gives no folder for {folder}")
    return folder
