"""Idea files: exact round trips, precise problems, atomic saves, unambiguous repairs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ideagen.cli import main
from ideagen.ideafile import IdeaFileError, load_ideas, save_ideas
from ideagen.schema import Idea

GOOD = {
    "Name": "a_idea",
    "Title": "A title",
    "Experiment": "Change one thing and measure another.",
    "Interestingness": 6,
    "Feasibility": 7,
    "Novelty": 5,
}


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=4))
    return path


def test_every_corpus_file_round_trips_byte_for_byte(corpus_dir: Path, tmp_path: Path) -> None:
    files = sorted(corpus_dir.glob("*.json"))
    assert len(files) == 41
    for source in files:
        loaded = load_ideas(source)
        assert not loaded.errors, (source.name, loaded.errors[:3])
        target = tmp_path / source.name
        save_ideas(target, loaded.ideas, like=loaded)
        assert target.read_bytes() == source.read_bytes(), source.name


def test_round_trip_after_a_change_keeps_layout_extra_keys_and_key_order(tmp_path: Path) -> None:
    entry = {"Title": "T", "extra": {"k": [1, 2]}, **GOOD, "novel": False}
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps([entry], indent=2) + "\n")
    loaded = load_ideas(path)
    loaded.ideas[0].Feasibility = 9
    save_ideas(path, loaded.ideas, like=loaded)
    expected = dict(entry, Feasibility=9)
    assert path.read_text() == json.dumps([expected], indent=2) + "\n"
    assert list(json.loads(path.read_text())[0]) == list(entry)


def test_new_idea_without_novel_does_not_gain_the_key() -> None:
    assert "novel" not in Idea.from_entry(GOOD).to_entry()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the file is empty"),
        ("[{", "invalid JSON at line 1, column 3"),
        ('{"Name": "x"}', "the top level is a JSON object, expected a list"),
    ],
)
def test_unreadable_files_raise_one_line_errors(tmp_path: Path, content: str, expected: str):
    path = write(tmp_path / "ideas.json", content)
    with pytest.raises(IdeaFileError, match=expected):
        load_ideas(path)


CASES = [
    (dict(GOOD, Feasibility=11), "entry 0 (a_idea): Feasibility: 11 is above 10"),
    (dict(GOOD, Novelty=0), "entry 0 (a_idea): Novelty: 0 is below 1"),
    (dict(GOOD, Novelty="7"), 'entry 0 (a_idea): Novelty: "7" is a string, expected an integer'),
    (dict(GOOD, Novelty=True), "entry 0 (a_idea): Novelty: true is a boolean"),
    (dict(GOOD, Title=""), "entry 0 (a_idea): Title: is empty"),
    (dict(GOOD, Experiment=["a", "b"]), "entry 0 (a_idea): Experiment: is a list"),
    (dict(GOOD, Name="Bad Name"), "entry 0 (Bad Name): Name: 'Bad Name' must match"),
    (dict(GOOD, novel="yes"), "entry 0 (a_idea): novel:"),
    ({k: v for k, v in GOOD.items() if k != "Title"}, "entry 0 (a_idea): Title: is missing"),
    ("just text", "entry 0: is a string, expected an object"),
]


@pytest.mark.parametrize(("entry", "message"), CASES)
def test_validate_names_file_entry_and_field(tmp_path, capsys, entry, message) -> None:
    path = write(tmp_path / "ideas.json", [entry])
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: {message}" in out


def test_validate_exit_codes_and_json_position(tmp_path, capsys) -> None:
    good = write(tmp_path / "good.json", [GOOD])
    broken = write(tmp_path / "broken.json", '[\n  {"Name": "x",\n  }\n]')
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(broken)]) == 2
    assert "broken.json: invalid JSON at line 3, column 3" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().out


def test_duplicate_names_are_a_warning_not_an_error(tmp_path, capsys) -> None:
    path = write(tmp_path / "ideas.json", [GOOD, dict(GOOD, Title="Other")])
    assert main(["validate", str(path)]) == 0
    assert "warning: " in capsys.readouterr().out


def test_validate_the_real_corpus_has_no_errors(corpus_dir, capsys) -> None:
    files = [str(p) for p in sorted(corpus_dir.glob("*.json"))]
    assert main(["validate", *files]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if "duplicate Name" in line]
    # The issue says 10 files; counting by hand finds duplicate Names in 8 of the 41.
    assert len({line.split(": entry")[0] for line in warnings}) == 8


def test_fix_repairs_only_unambiguous_problems_and_lists_them(tmp_path, capsys) -> None:
    entries = [
        dict(GOOD, Novelty="7"),
        dict(GOOD, Name="Second Idea!", Experiment=["Step one.", "Step two."]),
        dict(GOOD, Feasibility=11),
    ]
    source = write(tmp_path / "ideas.json", entries)
    before = source.read_bytes()
    out = tmp_path / "fixed.json"
    assert main(["validate", str(source), "--fix", "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    fixed = json.loads(out.read_text())
    assert fixed[0]["Novelty"] == 7
    assert fixed[1]["Name"] == "second_idea"
    assert fixed[1]["Experiment"] == "Step one. Step two."
    assert fixed[2]["Name"] == "a_idea_2" and fixed[2]["Feasibility"] == 11
    assert printed.count("fixed: ") == 4
    assert "Feasibility: 11 is above 10" in printed
    assert source.read_bytes() == before


WRITER = """
import sys
from ideagen.ideafile import load_ideas, save_ideas
from ideagen.schema import Idea
path = sys.argv[1]
base = load_ideas(path).ideas[0]
print("ready", flush=True)
count = 0
while True:
    count += 1
    ideas = [
        base.model_copy(update={"Name": f"idea_{i}", "Title": f"T{count}"}) for i in range(2000)
    ]
    save_ideas(path, ideas)
"""


def test_a_save_killed_midway_leaves_a_whole_file(tmp_path: Path) -> None:
    path = write(tmp_path / "ideas.json", [GOOD])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    loaded = load_ideas(path)
    assert not loaded.problems
    assert len(loaded.ideas) == 2000
    assert len({idea.Title for idea in loaded.ideas}) == 1
