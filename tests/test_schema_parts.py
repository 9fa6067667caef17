"""The idea's parts are declared once in schema.py; every model built from them says the same."""

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from ideagen.brainstorm import Critique, IdeaDraft
from ideagen.local.engine import grammar_schema
from ideagen.review.judge import JudgeScore
from ideagen.schema import RATING_FIELDS, DraftName, Idea, IdeaExperiment, IdeaTitle, Rating

MODELS: list[type[BaseModel]] = [Idea, IdeaDraft, Critique, JudgeScore]


def _fragment(model: type[BaseModel], field: str) -> dict:
    fragment = dict(model.model_json_schema()["properties"][field])
    fragment.pop("title")  # pydantic titles each property after its field name
    return fragment


@pytest.mark.parametrize("model", MODELS)
def test_ratings_are_the_shared_rating(model: type[BaseModel]) -> None:
    shared = TypeAdapter(Rating).json_schema()
    assert shared == {"type": "integer", "minimum": 1, "maximum": 10}
    for field in RATING_FIELDS:
        assert _fragment(model, field) == shared
        with pytest.raises(ValidationError):
            TypeAdapter(model.model_fields[field].rebuild_annotation()).validate_python(11)


@pytest.mark.parametrize("model", [Idea, IdeaDraft, Critique])
def test_title_and_experiment_are_the_shared_parts(model: type[BaseModel]) -> None:
    assert _fragment(model, "Title") == TypeAdapter(IdeaTitle).json_schema()
    assert _fragment(model, "Experiment") == TypeAdapter(IdeaExperiment).json_schema()


def test_drafts_and_critiques_share_the_name_and_keep_their_field_order() -> None:
    assert _fragment(IdeaDraft, "Name") == _fragment(Critique, "Name")
    assert _fragment(IdeaDraft, "Name") == TypeAdapter(DraftName).json_schema()
    idea_parts = ["Name", "Title", "Experiment", *RATING_FIELDS]
    assert list(IdeaDraft.model_fields) == idea_parts
    # Judgment before revision: the local model fills fields in this order.
    assert list(Critique.model_fields) == ["critique", "done", *idea_parts]
    assert list(JudgeScore.model_fields)[1::2] == list(RATING_FIELDS)


@pytest.mark.parametrize("model", [IdeaDraft, Critique, JudgeScore])
def test_local_grammar_gets_ratings_as_the_enum_one_to_ten(model: type[BaseModel]) -> None:
    properties = grammar_schema(model)["properties"]
    for field in RATING_FIELDS:
        assert properties[field]["enum"] == list(range(1, 11))
