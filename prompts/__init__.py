"""Marks prompts/ as the package ideagen._prompts, so the prompt files ship in the wheel."""
