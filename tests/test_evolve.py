"""`ideagen evolve` against the loopback model server (OpenAI API).

`Breeder` answers as a model would, from what each request asks: a breeding prompt gets the
next child from a list; the niche rubric gets the child's niche (the one the prompt asked
for, or the one the test assigns); the judge scores every idea by a per-idea quality; the
pairwise judge prefers the higher quality. Everything between the command and the socket is
the production code.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ideagen.cli import main
from ideagen.evolve import Evolve, EvolveError, NicheFileError, default_niches, load_niches
from ideagen.evolve.archive import Archive
from ideagen.evolve.niches import NichePlacer, names_technique
from ideagen.evolve.search import OPERATORS
from ideagen.ideafile import load_ideas
from ideagen.providers import RetryPolicy, get_model
from ideagen.resources import prompt_text
from ideagen.review.report import render_archive_report
from ideagen.store import Store
from ideagen.template_prompt import load_template
from testkit.ideas import IDEA_BANK, idea_json, make_template
from testkit.loopback import Fault, LoopbackServer, ReceivedRequest, Reply
from testkit.processes import default_ctrl_c
from tests.chromium import needs_chromium, run_chromium

FAST_RETRY = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=10, total_timeout_s=30)
SPEC = default_niches()
# Names the template's parts (so the gate lets it through) but needs a pretrained model.
INFEASIBLE = (
    "Replace the convolution layers of the CNN with a ResNet-50 pretrained on ImageNet, "
    "fine-tune it on the FashionMNIST images for each epoch and compare test accuracy and "
    "training loss with the baseline network."
)
SEEDS = [
    ("seed_mixup", "Mixup on clothing images", IDEA_BANK[2][2]),
    ("seed_cosine", "Cosine schedule", IDEA_BANK[1][2]),
]


def child(name: str, bank_index: int) -> tuple[str, str, str]:
    """An idea of the bank under another name."""
    _, title, experiment = IDEA_BANK[bank_index]
    return name, title, experiment


def shown_idea(text: str) -> dict:
    start = text.index("{")
    data, _ = json.JSONDecoder().raw_decode(text[start:])
    return data


def asked_niche(prompt: str) -> str | None:
    """The empty niche a fill or move prompt describes, from its bin labels."""
    if "No idea of this kind exists yet" not in prompt:
        return None
    part = prompt.split("No idea of this kind exists yet:", 1)[1]
    row = next(b.key for b in SPEC.rows.bins if f"{b.label}:" in part)
    column = next(b.key for b in SPEC.columns.bins if f"{b.label}:" in part)
    return f"{row}/{column}"


class Breeder:
    """The scripted model. `children`: (name, title, experiment) handed out in order to
    breeding prompts; `niche_of`: a niche per idea name (default: the niche a fill or move
    prompt asked for, else the first parent's, else data/tweak); `also_of`: the second row the
    placement names per idea name (default none); `quality`: 1-10 per name (default 5), or its
    three ratings; `position_bias`: the pairwise judge always answers A."""

    def __init__(
        self,
        children: list[tuple[str, str, str]],
        niche_of: dict[str, str] | None = None,
        quality: dict[str, int | tuple[int, int, int]] | None = None,
        position_bias: bool = False,
        also_of: dict[str, str] | None = None,
    ):
        self.children = list(children)
        self.niche_of = dict(niche_of or {})
        self.also_of = dict(also_of or {})
        self.quality = dict(quality or {})
        self.position_bias = position_bias
        self.lock = threading.Lock()
        self.bred: list[dict] = []  # operator, shown (parent names), child, asked niche
        self.seen: dict[str, list[ReceivedRequest]] = {}

    def ratings(self, name: str) -> tuple[int, int, int]:
        value = self.quality.get(name, 5)
        return value if isinstance(value, tuple) else (value, value, value)

    def q(self, name: str) -> int:
        return sum(self.ratings(name))

    def __call__(self, request: ReceivedRequest) -> Reply:
        user = request.last_user_text
        with self.lock:
            if request.purpose == "evolve.niche":
                kind, answer = "niche", self._niche(shown_idea(user)["Name"])
            elif request.purpose == "review.judge":
                kind, answer = "judge", self._judge(shown_idea(user)["Name"])
            elif request.purpose == "review.pairwise":
                names = re.findall(r'"Name": "([a-z0-9_]+)"', user)
                better = "A" if self.position_bias or self.q(names[0]) >= self.q(names[1]) else "B"
                kind, answer = "pairwise", {"reason": "scripted", "better": better}
            else:
                operator = request.purpose.removeprefix("evolve.")
                kind, answer = "breed", self._breed(operator, user)
            self.seen.setdefault(kind, []).append(request)
        return Reply(json.dumps(answer))

    def _breed(self, operator: str, user: str) -> dict:
        shown = re.findall(r'"Name": "([a-z0-9_]+)"', user)
        name, title, experiment = self.children.pop(0)
        asked = asked_niche(user)
        record = {"operator": operator, "shown": shown, "child": name, "asked": asked}
        if operator == "repair":  # the repaired child stands in for the refused one
            refused = next(b for b in reversed(self.bred) if b["child"] == shown[0])
            record |= {"shown": refused["shown"], "asked": refused["asked"], "repairs": shown[0]}
        self.bred.append(record)
        if name not in self.niche_of:
            parent_niche = self.niche_of.get(shown[0]) if shown else None
            self.niche_of[name] = asked or parent_niche or "data/tweak"
        return idea_json(name, title, experiment)

    def _niche(self, name: str) -> dict:
        row, column = self.niche_of.setdefault(name, "data/tweak").split("/")
        also = self.also_of.get(name, "none")
        return {
            "reason": "scripted placement",
            "changes": row,
            "reach": column,
            "also_changes": also,
        }

    def _judge(self, name: str) -> dict:
        interestingness, feasibility, novelty = self.ratings(name)
        return {
            "interestingness_rationale": f"interest of {name}",
            "Interestingness": interestingness,
            "feasibility_rationale": "fits",
            "Feasibility": feasibility,
            "novelty_rationale": "some",
            "Novelty": novelty,
        }


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with LoopbackServer() as started:
        monkeypatch.setenv("OPENAI_BASE_URL", started.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-evolve")
        yield started


@pytest.fixture
def template(tmp_path: Path) -> Path:
    folder = make_template(tmp_path / "fashion_template")
    seeds = [idea_json(*seed) for seed in SEEDS]
    (folder / "seed_ideas.json").write_text(json.dumps(seeds, indent=4))
    return folder


def evolve(store: Store, template: Path, out: Path, **options) -> Evolve:
    model = options.pop("model", None) or get_model(
        "openai", "gpt-4o-mini", store=store, retry=FAST_RETRY
    )
    options.setdefault("topic", "regularization")
    options.setdefault("concurrency", 1)
    options.setdefault("rng_seed", 7)
    # The replacement rules are shown on niches of one place, where every challenger meets
    # the elite; the tests of deeper niches (the default) say per_niche=2.
    options.setdefault("per_niche", 1)
    return Evolve(model, store, load_template(template), out=out, **options)


def entries_by_name(store: Store, result) -> dict[str, object]:
    return {e.idea.Name: e for e in store.archive_entries(result.archive)}


# archive logic


def test_only_a_better_challenger_in_the_same_niche_replaces_the_elite(
    server, store, template, tmp_path
):
    # seed_mixup -> regularisation/component (5), seed_cosine -> optimisation/tweak (5);
    # then children: weaker and equal in mixup's niche lose, a better one replaces it,
    # a better one in another niche does not touch it. The weaker one, rated below the elite
    # by the rubric, is not asked about in pairs.
    breeder = Breeder(
        [
            child("weaker_mixup", 5),
            child("equal_mixup", 6),
            child("better_mixup", 0),
            child("better_elsewhere", 4),
        ],
        niche_of={
            "seed_mixup": "regularisation/component",
            "seed_cosine": "optimisation/tweak",
            "weaker_mixup": "regularisation/component",
            "equal_mixup": "regularisation/component",
            "better_mixup": "regularisation/component",
            "better_elsewhere": "architecture/tweak",
        },
        quality={"weaker_mixup": 3, "equal_mixup": 5, "better_mixup": 8, "better_elsewhere": 9},
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    # seeds: 2 x (niche + judge); the weaker child and the last: breed, niche, judge; the
    # equal and the better: those and 2 pairwise. 20 calls, then the budget stops the run.
    result = evolve(store, template, out, max_calls=20).run()

    by_name = entries_by_name(store, result)
    assert by_name["weaker_mixup"].status == "lost"
    assert "rated below the elite, not compared" in by_name["weaker_mixup"].reason
    assert by_name["equal_mixup"].status == "lost", "a tie keeps the incumbent"
    assert by_name["better_mixup"].status == "elite"
    assert by_name["seed_mixup"].status == "replaced"
    assert by_name["seed_mixup"].replaced_by == by_name["better_mixup"].id
    assert by_name["seed_cosine"].status == "elite", "a challenger elsewhere replaces nothing"
    assert by_name["better_elsewhere"].status == "elite"
    elites = {e.niche: e.idea.Name for e in result.elites}
    assert elites["regularisation/component"] == "better_mixup"
    # every challenge asked both orders: incumbent first, then challenger first
    pairs = [
        re.findall(r'"Name": "([a-z0-9_]+)"', r.last_user_text) for r in breeder.seen["pairwise"]
    ]
    assert len(pairs) == 4
    assert not any("weaker_mixup" in pair for pair in pairs)
    for first, second in zip(pairs[::2], pairs[1::2], strict=True):
        assert first == second[::-1]
    assert result.session.lost == 2 and result.session.replaced == 1


@pytest.mark.parametrize("weak", [True, False])
def test_a_weak_model_is_asked_in_pairs_only_on_a_tie(server, store, template, tmp_path, weak):
    # Three seeds in one niche: seed_mixup (5) enters, seed_cosine (8) challenges it, then
    # rival (8, from the output file) challenges seed_cosine. A weak model's pairwise verdicts
    # mostly follow the order shown, so a challenger it rates higher wins on the rubric alone.
    breeder = Breeder(
        [],
        niche_of={n: "regularisation/component" for n in ("seed_mixup", "seed_cosine", "rival")},
        quality={"seed_mixup": 5, "seed_cosine": 8, "rival": 8},
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    out.write_text(json.dumps([idea_json(*child("rival", 3))]))
    model = get_model("openai", "gpt-4o-mini", store=store, retry=FAST_RETRY)
    model.weak = weak
    # each seed: niche + judge; then the pairwise questions, and no child fits the budget
    budget = 6 + (2 if weak else 4)
    options = {"descriptors": "model", "max_calls": budget}
    result = evolve(store, template, out, model=model, **options).run()

    by_name = entries_by_name(store, result)
    assert by_name["seed_mixup"].replaced_by == by_name["seed_cosine"].id
    assert by_name["rival"].status == "lost" and "split 1-1" in by_name["rival"].reason
    compared = [
        set(re.findall(r'"Name": "([a-z0-9_]+)"', r.last_user_text))
        for r in breeder.seen["pairwise"]
    ]
    if weak:
        assert "rated above the elite, not compared" in by_name["seed_cosine"].reason
        assert compared == [{"seed_cosine", "rival"}] * 2
    else:
        assert "won 2-0" in by_name["seed_cosine"].reason
        assert compared == [{"seed_mixup", "seed_cosine"}] * 2 + [{"seed_cosine", "rival"}] * 2
    assert not breeder.bred


def test_a_split_pairwise_verdict_goes_to_the_rubric_score(server, store, template, tmp_path):
    # A judge that always prefers the idea shown first splits every challenge 1-1, so the
    # rubric decides: the better-scored challenger wins, an equal one does not. The equal
    # one's mean, 26/3, is stored rounded; it is still equal, not "rated below" the elite.
    breeder = Breeder(
        [child("equal", 5), child("high", 6)],
        niche_of={n: "regularisation/component" for n in ("seed_mixup", "equal", "high")}
        | {"seed_cosine": "optimisation/tweak"},
        quality={"seed_mixup": (9, 9, 8), "equal": (8, 9, 9), "high": 9},
        position_bias=True,
    )
    server.responder = breeder
    result = evolve(store, template, tmp_path / "elites.json", max_calls=14).run()
    by_name = entries_by_name(store, result)
    assert by_name["equal"].status == "lost" and "split 1-1" in by_name["equal"].reason
    assert by_name["high"].status == "elite" and "split 1-1" in by_name["high"].reason


def test_an_idea_that_loses_its_niche_challenges_the_second_row_its_placement_names(
    server, store, template, tmp_path
):
    # A search over the learning rate changes optimisation too: losing the search niche to a
    # better search idea, it may still be the best optimisation idea. Each loser tries the
    # niche of its second row at the same reach, as a guest: it must be rated above the elite
    # there to be compared in pairs, as a tie costs two calls to keep the elite.
    search = "search/component"
    breeder = Breeder(
        [
            child("strong_search", 9),
            child("lr_search", 4),
            child("mixup_search", 5),
            child("weak_search", 6),
        ],
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"}
        | {name: search for name in ("strong_search", "lr_search", "mixup_search", "weak_search")},
        also_of={"lr_search": "optimisation"}
        | {name: "regularisation" for name in ("mixup_search", "weak_search")},
        quality={"strong_search": 9, "lr_search": 7, "mixup_search": 6, "weak_search": 6},
    )
    server.responder = breeder
    # seeds: 2 x (niche + judge); each child: breed, niche, judge; mixup_search's challenge of
    # seed_mixup: 2 pairwise. 18 calls.
    result = evolve(store, template, tmp_path / "o.json", max_calls=18, operators=("mechanism",))
    result = result.run()

    by_name = entries_by_name(store, result)
    assert by_name["strong_search"].niche == search
    lr = by_name["lr_search"]
    assert (lr.status, lr.niche) == ("elite", "optimisation/component")
    assert lr.reason.startswith(f"in {search}: rated below the elite")
    assert "then in optimisation/component: the niche was empty" in lr.reason
    mixup = by_name["mixup_search"]
    assert (mixup.status, mixup.niche) == ("elite", "regularisation/component")
    assert "won 2-0 against seed_mixup" in mixup.reason
    assert by_name["seed_mixup"].replaced_by == mixup.id
    weak = by_name["weak_search"]
    assert (weak.status, weak.niche) == ("lost", search), "a loser stays where it was placed"
    assert "then in regularisation/component: rated no higher than the elite" in weak.reason
    assert len(breeder.seen["pairwise"]) == 2, "only mixup_search, rated above seed_mixup"
    assert result.session.entered == 4 and result.session.replaced == 1
    assert result.session.lost == 1
    again = evolve(store, template, tmp_path / "other.json", max_calls=1)
    cached = again.placer.place(lr.idea, again.model)
    assert (cached.source, cached.also) == ("cache", "optimisation/component")


def test_a_sharpened_child_challenges_only_its_parents_niche(server, store, template, tmp_path):
    breeder = Breeder(
        [child("sharper", 5)],
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"},
        also_of={"sharper": "architecture"},
        quality={"sharper": 3},
    )
    server.responder = breeder
    result = evolve(store, template, tmp_path / "o.json", max_calls=7, operators=("sharpen",))
    result = result.run()

    sharper = entries_by_name(store, result)["sharper"]
    assert sharper.status == "lost" and "then in" not in sharper.reason
    assert not any(e.niche.startswith("architecture/") for e in result.elites)


def test_a_challenger_cut_off_by_the_budget_is_decided_by_its_rubric_score(
    server, store, template, tmp_path
):
    # seeds: 2 x (niche + judge); the child: breed, niche, judge. Its pairwise comparison
    # would be the 8th call: instead of being dropped, it is placed by its rubric score.
    breeder = Breeder(
        [child("better_mixup", 0)],
        niche_of={
            "seed_mixup": "regularisation/component",
            "better_mixup": "regularisation/component",
        },
        quality={"better_mixup": 8},
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    result = evolve(store, template, out, max_calls=7).run()

    assert result.stopped == "budget" and "pairwise" not in breeder.seen
    better = entries_by_name(store, result)["better_mixup"]
    assert better.status == "elite"
    assert "the budget ran out before the comparison" in better.reason
    assert "better_mixup" in [idea.Name for idea in load_ideas(out).ideas]


def test_a_niche_keeps_two_elites_and_a_challenger_meets_the_weaker(
    server, store, template, tmp_path
):
    # Both seeds are placed in one niche, which by default has two places: both stay. A
    # child placed there meets the weaker seed only; the stronger stays whatever happens.
    # Two elites in one niche are one filled niche, so the children are fresh ideas for
    # empty niches until a second niche is filled.
    niche = "regularisation/component"
    breeder = Breeder(
        [child("weaker", 4), child("better", 5), child("elsewhere", 6)],
        niche_of={"seed_mixup": niche, "seed_cosine": niche, "weaker": niche, "better": niche}
        | {"elsewhere": "data/tweak"},
        quality={"seed_mixup": 5, "seed_cosine": 7, "weaker": 4, "better": 6, "elsewhere": 3},
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    # seeds: 2 x (niche + judge); each child: breed, niche, judge; better's challenge: 2 pairwise
    result = evolve(store, template, out, max_calls=15, per_niche=2).run()

    by_name = entries_by_name(store, result)
    assert by_name["seed_cosine"].reason.startswith("the niche had room (1 of 2 held)")
    assert by_name["weaker"].status == "lost"
    assert "rated below the elite, not compared against seed_mixup" in by_name["weaker"].reason
    assert by_name["better"].status == "elite" and "won 2-0 against seed_mixup" in (
        by_name["better"].reason
    )
    assert by_name["seed_mixup"].replaced_by == by_name["better"].id
    assert by_name["seed_cosine"].status == "elite"
    compared = [
        set(re.findall(r'"Name": "([a-z0-9_]+)"', r.last_user_text))
        for r in breeder.seen["pairwise"]
    ]
    assert compared == [{"seed_mixup", "better"}] * 2
    assert [b["operator"] for b in breeder.bred] == ["fill"] * 3
    # each niche's best first, then the second places: the first runs cover the most niches
    order = ["seed_cosine", "elsewhere", "better"]
    assert [e.idea.Name for e in result.elites] == order
    assert [idea.Name for idea in load_ideas(out).ideas] == order
    assert result.to_json()["niches_filled"] == 2
    html = render_archive_report(Archive.load(result.archive, SPEC, store), result.spend)
    cell = html.split(f'data-niche="{niche}"', 1)[1].split("</td>", 1)[0]
    assert f'data-entry="{by_name["seed_cosine"].id}"' in cell
    assert f'<a class="also" href="#elite-{by_name["better"].id}">+ 6.0 better</a>' in cell
    assert "2 of 18 niches filled" in html


def test_in_a_niche_with_room_a_sharpened_child_still_meets_its_parent(
    server, store, template, tmp_path
):
    # Beside its parent, a sharpened child would be the same idea twice in the archive (the
    # duplicate check spares the parent), so it enters only by beating the parent.
    breeder = Breeder(
        [child("sharper", 5)],
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"},
        quality={"sharper": 3},
    )
    server.responder = breeder
    options = {"max_calls": 7, "operators": ("sharpen",), "per_niche": 2}
    result = evolve(store, template, tmp_path / "o.json", **options).run()

    [bred] = breeder.bred
    sharper = entries_by_name(store, result)["sharper"]
    assert sharper.status == "lost"
    assert f"rated below the elite, not compared against {bred['shown'][0]}" in sharper.reason


def test_crossovers_pair_elites_of_two_niches(server, store, template, tmp_path):
    # seed_mixup and seed_cosine share a niche; rival, from the output file, has one of its
    # own. Crossing the two seeds would cross one niche with itself.
    niche = "regularisation/component"
    children = [child(f"cross_{i}", i) for i in (4, 5, 6)]
    breeder = Breeder(
        children,
        niche_of={"seed_mixup": niche, "seed_cosine": niche, "rival": "optimisation/tweak"},
        quality={name: 1 for name, _, _ in children},
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    out.write_text(json.dumps([idea_json(*child("rival", 3))]))
    # seeds: 3 x (niche + judge); each child: breed, niche, judge
    options = {"max_calls": 15, "operators": ("crossover",), "per_niche": 2}
    evolve(store, template, out, **options).run()

    pairs = [frozenset(b["shown"]) for b in breeder.bred]
    assert len(pairs) == 3
    assert set(pairs) == {
        frozenset({"seed_mixup", "rival"}),
        frozenset({"seed_cosine", "rival"}),
    }


def test_the_elite_of_each_niche_is_the_best_idea_placed_there(server, store, template, tmp_path):
    # A longer run with every operator: whatever the order, each niche ends with its best
    # idea, and each replacement chain only ever goes up.
    bank = [
        (f"{name}_{i}", title, experiment)
        for i in range(2)
        for name, title, experiment in IDEA_BANK
    ]
    quality = {name: (len(name) * 7 + i) % 10 + 1 for i, (name, _, _) in enumerate(bank)}
    breeder = Breeder(bank, quality=quality)
    server.responder = breeder
    result = evolve(store, template, tmp_path / "elites.json", max_calls=70).run()

    entries = store.archive_entries(result.archive)
    judged = [e for e in entries if e.status in ("elite", "replaced", "lost")]
    assert len(judged) >= 10
    for elite in result.elites:
        rivals = [e for e in judged if e.niche == elite.niche]
        assert breeder.q(elite.idea.Name) == max(breeder.q(e.idea.Name) for e in rivals)
    by_id = {e.id: e for e in entries}
    for entry in entries:
        if entry.replaced_by is not None:
            successor = by_id[entry.replaced_by]
            assert successor.niche == entry.niche
            assert breeder.q(successor.idea.Name) > breeder.q(entry.idea.Name)
    operators = {b["operator"] for b in breeder.bred}
    assert {"fill", "crossover", "sharpen"} <= operators


def test_an_empty_archive_is_seeded_niche_by_niche(server, store, tmp_path):
    template = make_template(tmp_path / "no_seeds")  # an empty seed_ideas.json
    breeder = Breeder(IDEA_BANK[:3], quality={name: 6 for name, _, _ in IDEA_BANK[:3]})
    server.responder = breeder
    result = evolve(store, template, tmp_path / "elites.json", max_calls=6).run()

    # with fewer than two elites nothing can be bred: each step drafts an idea for a niche
    # the prompt names as empty, and the child enters it without a pairwise comparison
    assert [b["operator"] for b in breeder.bred] == ["fill", "fill"]
    assert breeder.bred[0]["asked"] != breeder.bred[1]["asked"]
    assert sorted(e.niche for e in result.elites) == sorted(b["asked"] for b in breeder.bred)
    assert "pairwise" not in breeder.seen
    assert result.session.entered == 2 and result.session.seeds == 0


def test_no_breeding_question_is_asked_twice_while_a_new_one_remains(
    server, store, template, tmp_path
):
    # Two seeds, so three questions: crossing them, and sharpening each. Every child loses
    # (rated below its parent), so the elites and the questions stay the same; across two
    # sessions the first three children answer the three questions, and only then does one
    # come again.
    children = [child(f"weak_{i}", i) for i in (0, 3, 4, 5)]  # none a seed's duplicate
    breeder = Breeder(
        children,
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"},
        quality={name: 1 for name, _, _ in children},
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    # seeds: 2 x (niche + judge); each child: breed, niche, judge
    evolve(store, template, out, max_calls=10, operators=("crossover", "sharpen")).run()
    evolve(store, template, out, max_calls=16, operators=("crossover", "sharpen")).run()

    questions = [(b["operator"], frozenset(b["shown"])) for b in breeder.bred]
    assert len(questions) == 4
    assert sorted(questions[:3], key=str) == sorted(
        [
            ("crossover", frozenset({"seed_mixup", "seed_cosine"})),
            ("sharpen", frozenset({"seed_mixup"})),
            ("sharpen", frozenset({"seed_cosine"})),
        ],
        key=str,
    )
    assert questions[3] in questions[:3]


def test_lineage_names_the_parents_the_child_was_bred_from(server, store, template, tmp_path):
    bank = [
        (f"{name}_{i}", title, experiment)
        for i in range(2)
        for name, title, experiment in IDEA_BANK
    ]
    breeder = Breeder(bank, quality={name: 4 + len(name) % 6 for name, _, _ in bank})
    server.responder = breeder
    result = evolve(store, template, tmp_path / "elites.json", max_calls=50, rng_seed=1).run()

    entries = entries_by_name(store, result)
    by_id = {e.id: e for e in entries.values()}
    bred = [b for b in breeder.bred if b["child"] in entries]
    assert any(b["operator"] == "crossover" for b in bred)
    for record in bred:
        child = entries[record["child"]]
        parent_names = [by_id[p].idea.Name for p in child.parents]
        assert parent_names == record["shown"], "the parents are the ideas the prompt showed"
        if record["operator"] == "crossover":
            assert by_id[child.parents[0]].niche != by_id[child.parents[1]].niche
    archive = Archive.load(result.archive, SPEC, store)
    stored = {s.id: s for s in store.ideas()}
    for elite in result.elites:
        steps = archive.lineage(archive.entries[elite.id])
        assert steps[0].entry_id == elite.id
        assert (
            steps[-1].operator.startswith("seed:")
            or steps[-1].operator == "fill"
            or (len(steps) == 12)
        ), "the lineage walks back to a seed or a fresh idea"
        if elite.parents:
            known = [by_id[p].idea_id for p in elite.parents if by_id[p].idea_id is not None]
            assert stored[elite.idea_id].parent_id == (known[0] if known else None)


def echoed_request() -> str:
    """An Experiment that gives back the crossover prompt's request instead of an idea."""
    request = prompt_text("evolve_crossover").strip().split("\n\n")[-1]
    return (
        f"In experiment.py, change `augment` and `Net`: {request} Compare test accuracy and "
        "training loss with the baseline network over two seeds."
    )


def test_a_child_refused_for_something_fixable_gets_one_repair_call(
    server, store, template, tmp_path
):
    # The first child restates its prompt (the local model once answered a crossover with the
    # prompt's own request) and its repair is a real idea; the second duplicates a seed (not
    # fixable: no repair); the third's repair restates the prompt again.
    breeder = Breeder(
        [
            ("echo_one", "Combining Both Ideas for Regularization", echoed_request()),
            child("fixed_one", 4),
            ("mixup_again", "Mixup Between Training Images Again", SEEDS[0][2]),
            ("echo_two", "Combining Both Ideas for Regularization Again", echoed_request()),
            ("echo_three", "Combining Both Regularization Ideas Once More", echoed_request()),
        ],
        niche_of={
            "seed_mixup": "regularisation/component",
            "seed_cosine": "optimisation/tweak",
            "fixed_one": "architecture/tweak",
        },
    )
    server.responder = breeder
    # seeds 4 calls; the first child 4 (breed, repair, niche, judge); the second 1; the third 2
    result = evolve(
        store, template, tmp_path / "elites.json", max_calls=13, operators=("mechanism",)
    ).run()

    by_name = entries_by_name(store, result)
    operators = [b["operator"] for b in breeder.bred]
    assert operators == ["mechanism", "repair", "mechanism", "mechanism", "repair"]
    assert "echo_one" not in by_name, "the repaired idea takes the refused one's place"
    assert by_name["fixed_one"].status == "elite" and by_name["fixed_one"].operator == "mechanism"
    assert by_name["mixup_again"].status == "duplicate"
    assert by_name["echo_three"].status == "gate"
    kinds = re.findall(r"(?:: |; )([a-z_]+): ", by_name["echo_three"].reason)
    assert by_name["echo_three"].reason.startswith("after one repair: ")
    assert kinds == ["copies_instructions"], "nothing else is wrong with it"
    repair = next(r for r in breeder.seen["breed"] if r.purpose == "evolve.repair")
    assert "copies_instructions" in repair.last_user_text and '"echo_one"' in repair.last_user_text
    assert result.session.repaired == 1 and result.session.gate == 1


def test_a_child_that_keeps_an_ideas_title_is_refused_or_retitled(
    server, store, template, tmp_path
):
    # A crossover of the local model kept its first parent's title over a change of its own:
    # the output would hold two ideas of one title. A model that repairs is asked to retitle it.
    breeder = Breeder(
        [
            ("namesake", SEEDS[0][1], IDEA_BANK[4][2]),
            ("batch_scaling", IDEA_BANK[4][1], IDEA_BANK[4][2]),
        ],
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"}
        | {"batch_scaling": "optimisation/component"},
    )
    server.responder = breeder
    # seeds 4 calls; the child: breed, repair, niche, judge
    result = evolve(store, template, tmp_path / "o.json", max_calls=8, operators=("mechanism",))
    result = result.run()

    by_name = entries_by_name(store, result)
    assert "namesake" not in by_name and by_name["batch_scaling"].status == "elite"
    repair = next(r for r in breeder.seen["breed"] if r.purpose == "evolve.repair")
    assert "same_title: it keeps the title of 'seed_mixup: Mixup on clothing images'" in (
        repair.last_user_text
    )
    assert result.session.repaired == 1

    with Store.open(tmp_path / "weak-home") as weak_store:
        local_like = get_model("openai", "gpt-4o-mini", store=weak_store, retry=FAST_RETRY)
        local_like.weak = True  # the local model's children are not repaired
        server.responder = Breeder(
            [("namesake", SEEDS[0][1], IDEA_BANK[4][2])],
            niche_of={
                "seed_mixup": "regularisation/component",
                "seed_cosine": "optimisation/tweak",
            },
        )
        weak = evolve(weak_store, template, tmp_path / "w.json", model=local_like, max_calls=5)
        weak = weak.run()
        refused = entries_by_name(weak_store, weak)["namesake"]
    assert refused.status == "duplicate" and refused.reason.startswith("same_title: ")
    assert weak.session.duplicate == 1


def test_children_that_duplicate_an_elite_or_are_infeasible_are_discarded_and_counted(
    server, store, template, tmp_path
):
    # The infeasible and the ungrounded child get one repair call each (the model answers
    # with the same experiment again); the duplicate does not.
    breeder = Breeder(
        [
            ("mixup_again", "Mixup Between Training Images Again", SEEDS[0][2]),
            ("imagenet_transfer", "Fine-Tuning a Pretrained ResNet on Clothing", INFEASIBLE),
            ("imagenet_again", "Fine-Tuning a Pretrained ResNet Once More", INFEASIBLE),
            child("vague_distillation", 11),  # names too little of experiment.py
            child("vague_again", 11),
        ],
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"},
    )
    server.responder = breeder
    # 4 calls for the seeds, then the breeding calls and the repairs: no child gets further.
    # A child starts only with room for its breeding, placement and score: 4 + 1 + 2 + 2 + 2.
    result = evolve(
        store, template, tmp_path / "elites.json", max_calls=11, operators=("mechanism", "measure")
    ).run()

    by_name = entries_by_name(store, result)
    repaired = [b.get("repairs") for b in breeder.bred]
    assert repaired == [None, None, "imagenet_transfer", None, "vague_distillation"]
    assert by_name["mixup_again"].status == "duplicate"
    assert "seed_mixup" in by_name["mixup_again"].reason
    assert by_name["imagenet_again"].status == "infeasible"
    assert by_name["imagenet_again"].reason.startswith("after one repair: ")
    assert "pretrained" in by_name["imagenet_again"].reason
    assert by_name["vague_again"].status == "gate"
    assert "ungrounded" in by_name["vague_again"].reason
    assert (result.session.duplicate, result.session.infeasible, result.session.gate) == (1, 1, 1)
    judged = [shown_idea(r.last_user_text)["Name"] for r in breeder.seen["judge"]]
    assert not {"mixup_again", "imagenet_again", "vague_again"} & set(judged)
    assert (result.totals.duplicate, result.totals.infeasible, result.totals.gate) == (1, 1, 1)


def give_baseline_results(template: Path) -> None:
    """A weak model writes in parts only on a template with baseline results to name."""
    baseline = {"fashion": {"means": {"test_accuracy": 0.9, "train_time": 60.0}}}
    (template / "run_0").mkdir()
    (template / "run_0" / "final_info.json").write_text(json.dumps(baseline))


def sketch_reply(title: str, change: str, runs: str, expected: str) -> dict:
    """A weak model's child in parts: a change to `Net` decided by test accuracy."""
    return {
        "function": "Net",
        "change": change,
        "runs": runs,
        "metric": "test_accuracy",
        "expected": expected,
        "Title": title,
        "Interestingness": 5,
        "Feasibility": 8,
        "Novelty": 3,
    }


def test_a_weak_model_breeds_each_child_in_parts_from_the_templates_own_names(
    server, store, template, tmp_path
):
    give_baseline_results(template)
    sketch = sketch_reply(
        "Dropout After Every Convolution of a Small CNN",
        "Add dropout regularization with rate 0.3 after each convolution of Net, "
        "active only in training, so that no channel can carry a class on its own; the rate "
        "is the one setting added and the optimizer and epochs stay as they are.",
        "dropout rates 0.1, 0.3 and 0.5 against the unchanged network, two seeds each",
        "a rate of 0.3 closes part of the gap between training and test accuracy",
    )
    name = "dropout_after_every_convolution_of_a_small_cnn"  # from the Title
    breeder = Breeder([], quality={name: 9})  # so that it becomes an elite and a parent
    breeder._breed = lambda operator, user: sketch
    server.responder = breeder
    model = get_model("openai", "gpt-4o-mini", store=store, retry=FAST_RETRY)
    model.weak = True
    result = Evolve(
        model,
        store,
        load_template(template),
        topic="regularization",
        out=tmp_path / "elites.json",
        max_calls=12,
        concurrency=1,
        rng_seed=7,
    ).run()

    # The reply to a breeding prompt could only name the template's functions and results,
    # and the context asked for the parts, not the paragraph.
    breeding = [r for r in server.requests if r.purpose.removeprefix("evolve.") in OPERATORS]
    assert breeding
    schema = breeding[0].body["response_format"]["json_schema"]["schema"]["properties"]
    assert schema["function"]["enum"] == ["augment", "make_optimizer", "Net"]
    assert schema["metric"]["enum"] == ["test_accuracy", "train_time"]
    assert '"function": the one function or class' in breeding[0].prompt_text
    # ideagen joined the parts into a child that passed the checks and was judged.
    bred = next(e for e in store.archive_entries(result.archive) if e.idea.Name == name)
    assert bred.status == "elite", bred.reason
    assert bred.idea.Experiment.startswith("In experiment.py, change `Net`: Add dropout")
    assert "Compare their test accuracy with the baseline's." in bred.idea.Experiment
    # Bred from later, it is shown in the parts it was written in, not as the joined paragraph
    # (whose joining phrases a small model copied into its own parts).
    parents = [r.last_user_text for r in breeding if '"function": "Net"' in r.last_user_text]
    assert parents
    assert not any("unchanged experiment.py:" in r.last_user_text for r in breeding)
    # Nor is any parent shown with its Name, which the local model took for code of
    # experiment.py; the seeds, shown as written, are shown by their titles.
    shown_seeds = [r.last_user_text for r in breeding if "Cosine schedule" in r.last_user_text]
    assert shown_seeds
    assert not any('"Name":' in r.last_user_text for r in breeding)


def channel_count_sketches() -> Callable[[str, str], dict]:
    """A weak model's replies to breeding prompts: each child scales the channels by a new
    factor, so that none duplicates another."""
    numbers = itertools.count()

    def sketch(operator: str, user: str) -> dict:
        factor = next(numbers) + 2
        return sketch_reply(
            f"Channel Count Times {factor} in a Small CNN",
            f"Scale the channel count of every convolution of Net by {factor}, so that each "
            "layer sees more feature maps of the same images; the factor is the one setting "
            "added, and the optimizer, the learning rate and the number of epochs stay as they "
            "are in the baseline.",
            f"a channel factor of {factor} against the unchanged network, two seeds",
            "a higher test accuracy for a longer training time",
        )

    return sketch


def test_a_title_names_a_technique_in_another_form_of_its_words():
    # A local measure child titled "Linear Probing of Hidden Layers" was built on "linear probes
    # of hidden layers"; compared by their first five letters, "probi" is not "probe", and the
    # embeddings put the child in the optimisation row (a demo run on 2026-12-01).
    hidden_layers = "linear probes of hidden layers"
    assert names_technique("Linear Probing of Hidden Layers for FashionMNIST", hidden_layers)
    assert names_technique("Batch Normalization After Every Convolution", "batch normalisation")
    assert names_technique("Evolving Dropout Rates with a Genetic Algorithm", "dropout")
    assert not names_technique("Dropout on the Hidden Layers", hidden_layers)
    assert not names_technique("Cosine Annealing of a Small CNN", "cosine learning-rate schedule")


def handed_technique(prompt: str) -> str | None:
    found = re.search(r"Technique to build the new idea on: (.+?)\. Name it", prompt)
    return found.group(1) if found else None


def test_a_weak_models_child_whose_title_names_its_technique_goes_to_the_techniques_row(
    server, store, template, tmp_path
):
    give_baseline_results(template)
    numbers = itertools.count()
    built_on: dict[str, tuple[str, str, bool]] = {}  # title -> technique, its row, named?

    def sketch(operator: str, user: str) -> dict:
        # Each child's change is another idea of the bank, whatever the technique handed;
        # every other child names the technique in its title.
        number = next(numbers)
        _, bank_title, bank_experiment = IDEA_BANK[number % len(IDEA_BANK)]
        technique, named = handed_technique(user), number % 2 == 1
        title = f"{technique.capitalize()}: {bank_title}" if named else bank_title
        built_on[title] = (technique, asked_niche(user).split("/")[0], named)
        return sketch_reply(
            title,
            f"{bank_experiment} The change is made in Net and the training loop only, and "
            "every other setting of the baseline stays as it is.",
            "the changed network against the unchanged one, two seeds for each of them",
            "a higher test accuracy than the baseline's",
        )

    breeder = Breeder([child(f"child_{i}", i % len(IDEA_BANK)) for i in range(40)])
    breeder._breed = sketch
    server.responder = breeder
    model = get_model("openai", "gpt-4o-mini", store=store, retry=FAST_RETRY)
    model.weak = True
    result = evolve(
        store, template, tmp_path / "elites.json", model=model, max_calls=45, operators=("move",)
    ).run()

    embeddings_alone = NichePlacer(SPEC, store, "embedding")
    overruled = 0
    for entry in store.archive_entries(result.archive):
        if entry.operator != "move" or entry.niche is None:
            continue
        technique, row, named = built_on[entry.idea.Title]
        if named:
            assert entry.niche.split("/")[0] == row, (entry.idea.Title, entry.niche)
            assert f"built on {technique!r}" in entry.reason
            overruled += embeddings_alone.nearest(entry.idea).niche.split("/")[0] != row
        else:
            assert "nearest niche description" in entry.reason
    assert overruled >= 2, "some named their technique in a text the embeddings put elsewhere"


@pytest.mark.parametrize("weak", [True, False])
def test_a_weak_model_builds_each_new_change_on_a_technique_its_row_lacks(
    server, store, template, tmp_path, weak
):
    give_baseline_results(template)
    # Three techniques per row; the seeds name one each in theirs (mixup, cosine).
    spec = SPEC.model_copy(deep=True)
    # The template defines augment, make_optimizer and Net; a row naming a function it lacks
    # (evaluation) leaves the model all three.
    functions = {
        "data": ["augment"],
        "architecture": ["Net"],
        "optimisation": ["make_optimizer"],
        "regularisation": ["augment", "Net"],
        "evaluation": ["evaluate", "Net"],
    }
    for row in spec.rows.bins:
        row.examples = {
            "regularisation": ["mixup", "label smoothing", "dropout"],
            "optimisation": ["cosine learning-rate schedule", "gradient clipping", "warmup"],
        }.get(row.key, [f"{row.key} technique {n}" for n in ("one", "two", "three")])
        row.functions = functions.get(row.key, [])
    named = {"regularisation": "mixup", "optimisation": "cosine learning-rate schedule"}

    # where the embeddings place the seeds for the weak model; the capable one places them
    placed = {"seed_mixup": "regularisation/tweak", "seed_cosine": "optimisation/method"}
    breeder = Breeder([child(f"child_{i}", i % len(IDEA_BANK)) for i in range(40)], placed)
    if weak:
        breeder._breed = channel_count_sketches()
    server.responder = breeder
    model = get_model("openai", "gpt-4o-mini", store=store, retry=FAST_RETRY)
    model.weak = weak
    result = evolve(
        store,
        template,
        tmp_path / "elites.json",
        model=model,
        niches=spec,
        max_calls=40,
        operators=("move", "mechanism", "measure", "sharpen"),
    ).run()

    entries = store.archive_entries(result.archive)
    assert {e.idea.Name: e.niche for e in entries if e.operator.startswith("seed")} == placed
    breeding = [r for r in server.requests if r.purpose.removeprefix("evolve.") in OPERATORS]
    prompts = [(r.purpose, r.last_user_text) for r in breeding if len(r.messages) == 1]
    assert {purpose for purpose, _ in prompts} == {
        "evolve.move",
        "evolve.mechanism",
        "evolve.measure",
        "evolve.sharpen",
    }
    if not weak:  # a capable model is not narrowed to a list
        assert not any(handed_technique(prompt) for _, prompt in prompts)
        return
    choices = {}  # the functions each breeding prompt's reply could name
    for request in breeding:
        function = request.body["response_format"]["json_schema"]["schema"]["properties"]
        function = function["function"]
        choices[request.last_user_text] = function.get("enum") or [function["const"]]
    by_row: dict[str, list[str]] = {}
    for purpose, prompt in prompts:
        technique = handed_technique(prompt)
        everything = ["augment", "make_optimizer", "Net"]
        if purpose == "evolve.sharpen":  # a sharper version of its parent keeps its change
            assert technique is None and choices[prompt] == everything
            continue
        if purpose == "evolve.move":
            row = asked_niche(prompt).split("/")[0]
        elif purpose == "evolve.measure":  # measurements, whatever the parent's row
            row = "evaluation"
        else:
            parent = shown_idea(prompt.split("The idea to vary:", 1)[1])
            row = next(e.niche for e in entries if e.idea.Title == parent["Title"]).split("/")[0]
        assert technique in spec.rows.bin(row).examples, (purpose, row, technique)
        expected = everything if row in ("evaluation", "search") else functions[row]
        assert choices[prompt] == expected, (purpose, row)
        by_row.setdefault(row, []).append(technique)
    assert by_row.keys() > named.keys()
    for row, handed in by_row.items():
        # A row's techniques go round once before any comes again; one an elite of the row
        # already names (the seeds' mixup and cosine schedule) only after the others.
        fresh = [t for t in spec.rows.bin(row).examples if t != named.get(row)]
        first = handed[: len(fresh)]
        assert len(set(first)) == len(first) and set(first) <= set(fresh), (row, handed)


@pytest.mark.parametrize("weak", [True, False])
def test_a_weak_model_is_not_asked_to_sharpen(server, store, template, tmp_path, weak):
    # The local model's sharpened children entered the archive 1 time in 10; its calls go to
    # the other operators. A capable model, in the same run, is asked to sharpen.
    give_baseline_results(template)
    breeder = Breeder([child(f"child_{i}", i % len(IDEA_BANK)) for i in range(40)])
    if weak:
        breeder._breed = channel_count_sketches()
    server.responder = breeder
    model = get_model("openai", "gpt-4o-mini", store=store, retry=FAST_RETRY)
    model.weak = weak
    evolve(store, template, tmp_path / "elites.json", model=model, max_calls=40).run()

    purposes = {request.purpose.removeprefix("evolve.") for request in server.requests}
    asked = purposes & set(OPERATORS)
    if weak:
        assert asked == {"move", "mechanism", "measure", "crossover"}, asked
    else:
        assert "sharpen" in asked, asked


# budget, resume, output


def test_the_budget_stops_the_run_and_counts_every_session(server, store, template, tmp_path):
    breeder = Breeder(IDEA_BANK)
    server.responder = breeder
    out = tmp_path / "elites.json"
    first = evolve(store, template, out, max_calls=15).run()
    assert first.stopped == "budget"
    assert 13 <= first.spend.calls <= 15, "no step of 3 calls fits after the 13th"
    calls = len(server.requests)

    again = evolve(store, template, out, max_calls=15).run()
    assert again.stopped == "budget" and len(server.requests) == calls, "nothing left to spend"

    more = evolve(store, template, out, max_calls=25).run()
    assert 23 <= more.spend.calls <= 25 and more.spend.calls == len(server.requests)
    assert more.totals.judged > first.totals.judged


def test_repairs_and_retries_are_counted_and_never_take_the_run_past_the_budget(
    server, store, template, tmp_path
):
    # seeds: 2 x (niche + judge), the first judge call retried after a server error: 5 calls.
    # A child is promised 3 (breed, niche, judge): 8 in all. Its judge's first reply is no
    # score, and the repair would be a ninth call: the child is counted as cut instead.
    breeder = Breeder(
        IDEA_BANK,
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"},
        quality={"seed_mixup": 9, "seed_cosine": 9},
    )
    judge_replies = [Fault.server_error(), None, None, Reply("no score here")]

    def responder(request: ReceivedRequest):
        if request.purpose == "review.judge" and judge_replies:
            return judge_replies.pop(0) or breeder(request)
        return breeder(request)

    server.responder = responder
    result = evolve(store, template, tmp_path / "elites.json", max_calls=8).run()
    assert result.stopped == "budget"
    assert result.spend.calls == len(server.requests) == 8
    assert result.spend.failed_calls == 1
    assert result.session.bred == 1 and result.session.cut == 1
    assert [e.operator for e in store.archive_entries(result.archive)] == ["seed:template"] * 2


def test_no_child_is_bred_without_the_budget_to_judge_it(server, store, template, tmp_path):
    # seeds: 2 x (niche + judge) = 4 calls. A child needs 3 (breed, niche, judge): with 6 in
    # all it is not started, and with 9 one child is bred, judged and recorded.
    breeder = Breeder(
        IDEA_BANK,
        niche_of={"seed_mixup": "regularisation/component", "seed_cosine": "optimisation/tweak"},
        quality={"seed_mixup": 9, "seed_cosine": 9},  # so no child is asked about in pairs
    )
    server.responder = breeder
    out = tmp_path / "elites.json"
    first = evolve(store, template, out, max_calls=6).run()
    assert first.stopped == "budget" and first.spend.calls == 4
    assert "breed" not in breeder.seen

    more = evolve(store, template, out, max_calls=9).run()
    assert more.stopped == "budget" and more.spend.calls == 7
    assert len(breeder.seen["breed"]) == 1 and len(breeder.seen["judge"]) == 3
    children = [e for e in store.archive_entries(more.archive) if not e.operator.startswith("seed")]
    assert [e.idea.Name for e in children] == [breeder.bred[0]["child"]]
    assert children[0].status in ("elite", "lost")


def test_concurrent_workers_record_every_child_they_breed(server, store, template, tmp_path):
    breeder = Breeder(IDEA_BANK, quality={"seed_mixup": 9, "seed_cosine": 9})
    server.responder = breeder
    result = evolve(store, template, tmp_path / "elites.json", max_calls=17, concurrency=3).run()
    assert result.stopped == "budget" and result.spend.calls <= 17
    children = [
        e for e in store.archive_entries(result.archive) if not e.operator.startswith("seed")
    ]
    assert len(breeder.bred) >= 3
    assert sorted(e.idea.Name for e in children) == sorted(b["child"] for b in breeder.bred)


def test_a_budget_is_required_and_operators_are_checked(server, store, template, tmp_path):
    with pytest.raises(EvolveError, match="give a budget"):
        evolve(store, template, tmp_path / "o.json")
    with pytest.raises(EvolveError, match="operators must be some of"):
        evolve(store, template, tmp_path / "o.json", max_calls=5, operators=("mutate",))


def test_elites_are_written_best_first_after_the_users_own_entries_are_kept(
    server, store, template, tmp_path
):
    out = tmp_path / "elites.json"
    own = [
        idea_json("users_own_idea", "The user's idea", IDEA_BANK[22][2]),
        {"Name": "Not Valid", "Title": "broken entry kept", "Experiment": "x"},
    ]
    out.write_text(json.dumps(own, indent=2))
    breeder = Breeder(
        IDEA_BANK,
        niche_of={"users_own_idea": "evaluation/tweak"},
        quality={"users_own_idea": 2, "seed_mixup": 8, "seed_cosine": 6},
    )
    server.responder = breeder
    result = evolve(store, template, out, max_calls=30).run()

    written = json.loads(out.read_text())
    names = [entry["Name"] for entry in written]
    elite_names = [e.idea.Name for e in result.elites]
    assert names[: len(elite_names)] == elite_names
    scores = [entry["evolve"]["score"] for entry in written[: len(elite_names)]]
    assert scores == sorted(scores, reverse=True)
    assert written[-1] == own[1], "an invalid entry of the user's is kept as it was"
    assert "users_own_idea" in names
    first = written[0]
    assert first["Interestingness"] == breeder.ratings(first["Name"])[0], "the judge's ratings"
    assert "original_ratings" in first
    assert {problem.index for problem in load_ideas(out).errors} == {len(written) - 1}


def test_an_interrupted_run_resumes_with_its_archive(server, template, tmp_path):
    server.latency_s = 0.15
    breeder = Breeder(IDEA_BANK)
    server.responder = breeder
    out = tmp_path / "elites.json"
    arguments = [
        "evolve",
        "--topic",
        "regularization",
        "--template",
        str(template),
        "--out",
        str(out),
        "--budget-calls",
        "24",
        "--provider",
        "openai",
        "--model",
        "gpt-4o-mini",
        "--concurrency",
        "1",
        "--seed",
        "5",
        "--quiet",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "ideagen", *arguments], cwd=tmp_path, preexec_fn=default_ctrl_c
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(server.requests) < 8:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    with Store.open(os.environ["IDEAGEN_HOME"]) as store:
        run = evolve(store, template, out, max_calls=24)
        before = store.archive_entries(run.key)
        calls_before = store.spend(run.archive_run).calls
    assert before and 8 <= calls_before < 24
    elites = {e.idea.Name for e in before if e.status == "elite"}
    assert elites == {entry["Name"] for entry in json.loads(out.read_text())}

    server.latency_s = 0
    assert main(arguments) == 0
    with Store.open(os.environ["IDEAGEN_HOME"]) as store:
        after = store.archive_entries(run.key)
        calls = store.spend(run.archive_run).calls
    assert [(e.id, e.idea.Name) for e in after[: len(before)]] == [
        (e.id, e.idea.Name) for e in before
    ], "the first run's archive is kept"
    # never past the budget, and short of it only by less than a step (breed, niche, judge)
    assert 22 <= calls <= 24
    names = [e.idea.Name for e in after]
    assert len(names) == len(set(names)), "no seed or child is taken up twice"


# niches


def test_a_custom_niche_file_replaces_the_grid(server, store, template, tmp_path):
    spec = {
        "rows": {
            "name": "part",
            "question": "Which part?",
            "bins": [
                {"key": "model", "label": "Model", "description": "the network"},
                {"key": "training", "label": "Training", "description": "how it is trained"},
            ],
        },
        "columns": {
            "name": "risk",
            "question": "How risky?",
            "bins": [
                {"key": "safe", "label": "Safe", "description": "likely to work"},
                {"key": "bold", "label": "Bold", "description": "may fail"},
            ],
        },
    }
    path = tmp_path / "niches.json"
    path.write_text(json.dumps(spec))
    niches = load_niches(path)
    assert niches.cells() == ["model/safe", "model/bold", "training/safe", "training/bold"]

    def place(request: ReceivedRequest) -> Reply:
        if request.purpose == "evolve.niche":
            assert '"part": Which part?' in request.system_text
            answer = {"reason": "r", "part": "training", "risk": "bold", "also_part": "none"}
            return Reply(json.dumps(answer))
        return breeder(request)

    breeder = Breeder(IDEA_BANK)
    server.responder = place
    result = evolve(store, template, tmp_path / "o.json", max_calls=4, niches=niches).run()
    elites = result.elites
    assert {e.niche for e in elites} == {"training/bold"}
    assert all("placed by model" in e.reason for e in elites)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["rows"]["bins"].pop(), "rows.bins: List should have at least 2 items"),
        (lambda s: s["columns"]["bins"][1].update(key="Bad Key"), "columns.bins.1.key"),
        (lambda s: s["columns"]["bins"][1].update(key="tweak"), "repeated: tweak"),
        (lambda s: s.pop("columns"), "columns: Field required"),
        (lambda s: s["rows"]["bins"][1].update(key="none"), '"none" cannot be the key of a row'),
        (
            lambda s: s["rows"]["bins"][1].update(examples=["dropout", " "]),
            "rows.bins.1.examples.1",
        ),
    ],
)
def test_a_bad_niche_file_names_the_file_and_field(tmp_path, change, message):
    spec = json.loads(default_niches().model_dump_json())
    spec["rows"]["bins"] = spec["rows"]["bins"][:2]
    change(spec)
    path = tmp_path / "niches.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(NicheFileError) as error:
        load_niches(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_reports_a_bad_niche_file(tmp_path, capsys):
    path = tmp_path / "niches.json"
    path.write_text("{not json")
    code = main(
        [
            "evolve",
            "--topic",
            "t",
            "--out",
            str(tmp_path / "o.json"),
            "--budget-calls",
            "5",
            "--niches",
            str(path),
        ]
    )
    assert code == 2
    assert f"{path}: not valid JSON" in capsys.readouterr().err


def test_placements_are_cached_and_fall_back_to_embeddings(server, store, template, tmp_path):
    bad = {"left": 3}

    def unusable_first_placement(request: ReceivedRequest) -> Reply:
        if request.purpose == "evolve.niche" and bad["left"]:
            bad["left"] -= 1
            return Reply(json.dumps({"reason": "r", "changes": "cooking", "reach": "far"}))
        return breeder(request)

    breeder = Breeder(IDEA_BANK)
    server.responder = unusable_first_placement
    first = evolve(store, template, tmp_path / "o.json", max_calls=7).run()
    entries = entries_by_name(store, first)
    assert "placed by embedding" in entries["seed_mixup"].reason
    assert "placed by model" in entries["seed_cosine"].reason

    placements = len(breeder.seen["niche"])
    run = evolve(store, template, tmp_path / "other.json", max_calls=7)
    assert run.placer.place(entries["seed_cosine"].idea, run.model).source == "cache"
    assert len(breeder.seen["niche"]) == placements


# the report


def test_report_grid_is_self_contained_and_escaped(server, store, template, tmp_path):
    title = "Evolving <b>bold</b> & learning rate schedules"
    breeder = Breeder([("x_lt", title, IDEA_BANK[9][2])], quality={"x_lt": 9})
    server.responder = breeder
    result = evolve(store, template, tmp_path / "o.json", max_calls=9).run()
    html = render_archive_report(Archive.load(result.archive, SPEC, store), result.spend)
    assert html.count('class="niche') == len(SPEC.cells())
    assert "http" not in html.replace("http-equiv", "")
    assert "Evolving &lt;b&gt;bold&lt;/b&gt; &amp; learning" in html and "<b>bold</b>" not in html


@needs_chromium
def test_report_grid_opens_in_chromium_and_a_click_shows_the_lineage(
    server, store, template, tmp_path
):
    bank = [
        (f"{name}_{i}", title, experiment)
        for i in range(2)
        for name, title, experiment in IDEA_BANK
    ]
    breeder = Breeder(bank, quality={name: 3 + len(name) % 7 for name, _, _ in bank})
    server.responder = breeder
    result = evolve(store, template, tmp_path / "o.json", max_calls=60, rng_seed=3).run()
    archive = Archive.load(result.archive, SPEC, store)
    bred = next(e for e in result.elites if e.parents)
    click = f"""
    document.querySelector('td.niche[data-entry="{bred.id}"]').click();
    var out = document.createElement('pre'); out.id = 'opened';
    out.textContent = Array.prototype.filter.call(document.querySelectorAll('details'),
      function (d) {{ return d.open; }}).map(function (d) {{ return d.id; }}).join(',');
    document.body.appendChild(out);
    """
    html = render_archive_report(archive, result.spend).replace(
        "</body>", f"<script>{click}</script></body>"
    )
    page = tmp_path / "archive.html"
    page.write_text(html, encoding="utf-8")
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())

    assert re.search(r'<pre id="opened">([^<]*)</pre>', dom).group(1) == f"elite-{bred.id}"
    filled = re.findall(r'<td class="niche" data-niche="([a-z/]+)" data-entry', dom)
    assert sorted(filled) == sorted(e.niche for e in result.elites)
    assert dom.count('class="niche empty"') == len(SPEC.cells()) - len(filled)
    details = dom.split(f'id="elite-{bred.id}"', 1)[1].split("</details>", 1)[0]
    for parent in bred.parents:
        assert archive.entries[parent].idea.Name in details, "the lineage lists the parents"

    shot = tmp_path / "grid.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,800", page.as_uri())
    from PIL import Image

    colours = {c for _, c in Image.open(shot).convert("RGB").getcolors(maxcolors=1_000_000)}
    assert len(colours) > 50


def test_evolving_into_the_templates_own_seed_file_keeps_every_seed_as_it_was(
    server, template, tmp_path, capsys
):
    # The use: the elites written as the template's seed_ideas.json. The seeds share
    # a niche of one place: seed_mixup is its elite (and written as one) until seed_cosine
    # replaces it. It is still the user's idea, so it stays in the file after the elites, as
    # the user wrote it.
    out = template / "seed_ideas.json"
    before = json.loads(out.read_text())
    server.responder = Breeder(
        IDEA_BANK,
        niche_of={
            "seed_mixup": "regularisation/component",
            "seed_cosine": "regularisation/component",
        },
        quality={"seed_mixup": 6, "seed_cosine": 8},
    )
    arguments = ["evolve", "--topic", "regularization", "--template", str(template)]
    arguments += ["--out", str(out), "--budget-calls", "12", "--per-niche", "1"]
    arguments += ["--provider", "openai"]
    assert main([*arguments, "--model", "gpt-4o-mini", "--concurrency", "1"]) == 0

    with Store.open(os.environ["IDEAGEN_HOME"]) as store:
        run = evolve(store, template, out, max_calls=12)
        entries = {e.idea.Name: e for e in store.archive_entries(run.key)}
        elites = [e.idea.Name for e in run.archive.recommended()]
    assert entries["seed_mixup"].status == "replaced" and "seed_cosine" in elites
    written = json.loads(out.read_text())
    assert [entry["Name"] for entry in written[: len(elites)]] == elites
    assert written[len(elites) :] == [before[0]], "the replaced seed, as it was"
    printed = capsys.readouterr()
    said = " ".join((printed.out + printed.err).split())
    niches = len({e.niche for e in run.archive.elites()})
    assert (
        f"{len(elites)} elites of {niches} of 18 niches, each niche's best first, "
        "then 1 other entry"
    ) in said
    # The user edits the seed; run again with the budget spent: nothing is bred, and the file
    # is written with the edit kept.
    written[-1]["Interestingness"] = 2
    out.write_text(json.dumps(written, indent=4))
    assert main([*arguments, "--model", "gpt-4o-mini", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["other_entries_kept"] == 1
    assert json.loads(out.read_text()) == written
