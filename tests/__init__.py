"""ideagen's tests. A package, so that its helpers have one import name (tests.fakes)."""
