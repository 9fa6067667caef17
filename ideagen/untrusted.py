"""Untrusted text in prompts: idea files and paper abstracts come from outside, so a prompt
shows them fenced, after a note that what is inside is data and not instructions.

The markers carry a tag derived from the text itself: text that tried to close the fence early
would have to contain its own hash, so it cannot.
"""

from __future__ import annotations

import hashlib

from ideagen.resources import render_prompt


def fence(text: str, what: str = "idea") -> str:
    tag = "DATA-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return render_prompt("untrusted_data", what=what, tag=tag, text=text).strip()
