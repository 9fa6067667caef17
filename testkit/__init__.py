"""Stand-ins at the network edge, shared by tests/ and bench/ (not shipped in the wheel):
the model API server (loopback), the literature API server (literature) and a scripted
idea-writing model (ideas)."""
