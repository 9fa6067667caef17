"""Finding ideas that are the same experiment.

text.py (terms, TF-IDF), parts.py (what an idea changes and measures), neighbours.py
(nearest ideas), pairs.py (pair features and the combiner), linkage.py (groups), judge.py (a
model on uncertain pairs), find.py (the two entry points below).
"""

from ideagen.dedup.find import (
    DEFAULT_THRESHOLD,
    DedupResult,
    DuplicateCluster,
    DuplicateMatch,
    duplicates_against,
    find_duplicates,
)
from ideagen.dedup.judge import judgment_key
from ideagen.dedup.pairs import PairEvidence
from ideagen.dedup.text import opening_text

__all__ = [
    "DEFAULT_THRESHOLD",
    "DedupResult",
    "DuplicateCluster",
    "DuplicateMatch",
    "PairEvidence",
    "duplicates_against",
    "find_duplicates",
    "judgment_key",
    "opening_text",
]
