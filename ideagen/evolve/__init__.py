"""Quality-diversity search over ideas (`ideagen evolve`): a MAP-Elites archive in the store."""

from ideagen.evolve.archive import Archive, archive_key, archive_run_id
from ideagen.evolve.niches import (
    NicheFileError,
    NichePlacer,
    NicheSpec,
    default_niches,
    load_niches,
)
from ideagen.evolve.search import Evolve, EvolveError, EvolveEvent, EvolveResult

__all__ = [
    "Archive",
    "Evolve",
    "EvolveError",
    "EvolveEvent",
    "EvolveResult",
    "NicheFileError",
    "NichePlacer",
    "NicheSpec",
    "archive_key",
    "archive_run_id",
    "default_niches",
    "load_niches",
]
