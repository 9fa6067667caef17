"""ideagen: draft, review and rank research ideas for The AI Scientist."""

__version__ = "0.1.0"
