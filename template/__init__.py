"""Marks template/ as the package ideagen._template, so the bundled template ships in the
wheel. The AI Scientist does not read this file."""
