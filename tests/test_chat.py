"""`ideagen chat` driven through its real terminal interface (pexpect on a pty), with the
loopback server standing in for the model API."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from ideagen.chat import extract_ideas
from ideagen.store import Store
from testkit.ideas import idea_json, make_template
from testkit.loopback import LoopbackServer
from testkit.processes import default_ctrl_c
from tests.fakes import ChatPartner

TIMEOUT = 30


@pytest.fixture
def chat_env(loopback: LoopbackServer, tmp_path: Path) -> dict[str, str]:
    loopback.responder = ChatPartner()
    env = os.environ.copy()
    env.update(
        ANTHROPIC_BASE_URL=loopback.anthropic_url,
        ANTHROPIC_API_KEY="sk-test-chat",
        COLUMNS="200",
        TERM="dumb",
    )
    return env


def spawn_chat(tmp_path: Path, env: dict[str, str], *extra: str) -> pexpect.spawn:
    template = make_template(tmp_path / "fashion_template")
    args = [
        "-m",
        "ideagen",
        "chat",
        "--template",
        str(template),
        "--provider",
        "anthropic",
        "--out",
        str(tmp_path / "seed_ideas.json"),
        *extra,
    ]
    return pexpect.spawn(
        sys.executable,
        args,
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=TIMEOUT,
        preexec_fn=default_ctrl_c,
    )


def test_chat_collects_keeps_refines_and_saves_ideas(chat_env, tmp_path, isolated_home):
    out = tmp_path / "seed_ideas.json"
    child = spawn_chat(tmp_path, chat_env, "--topic", "regularization")
    # The topic opens the conversation; the model's two proposals are collected.
    child.expect("collected idea 1: label_smoothing_sweep")
    child.expect("collected idea 2: cosine_warm_restarts")
    child.expect(r"1 JSON block\(s\) were not valid ideas")
    child.expect("you> ")
    child.sendline("/keep 2")
    child.expect("kept 2: cosine_warm_restarts")
    child.sendline("/refine 2 make it cheaper")
    child.expect("revised 2:")
    child.expect("Use only two epochs")
    child.sendline("/ideas")
    child.expect(r"\*2\. cosine_warm_restarts")
    child.sendline("/save")
    child.expect("saved 1 idea")
    child.sendline("any cheaper ones?")
    child.expect("collected idea 4: width_depth_tradeoff")
    child.sendline("/drop 3")
    child.expect("dropped 3: mixup_regularization")
    child.sendline("/keep 3")
    child.expect("no idea number 3")
    child.sendline("/keep 4")
    child.sendline("/quit")
    child.expect(r"save 1 kept idea\(s\) to .*seed_ideas.json\? \[Y/n\]")
    child.sendline("y")
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    saved = json.loads(out.read_text())
    assert [entry["Name"] for entry in saved] == ["cosine_warm_restarts", "width_depth_tradeoff"]
    assert saved[0]["Feasibility"] == 9 and "two epochs" in saved[0]["Experiment"]
    with Store.open(isolated_home) as store:
        session = store._conn.execute("SELECT DISTINCT session_id FROM transcripts").fetchall()
        assert len(session) == 1
        transcript = store.transcript(session[0][0])
    roles = [role for role, _ in transcript]
    assert roles[:2] == ["user", "assistant"] and "regularization" in transcript[0][1]
    assert any(content.startswith("/keep 2") for _, content in transcript)
    assert any("any cheaper ones?" == content for _, content in transcript)


@pytest.mark.parametrize("ending", ["ctrl-c", "ctrl-d"])
def test_ending_abruptly_offers_to_save_kept_ideas(chat_env, tmp_path, ending):
    out = tmp_path / "seed_ideas.json"
    out.write_text(json.dumps([idea_json("label_smoothing_sweep", "Older", "Older idea.")]))
    child = spawn_chat(tmp_path, chat_env)
    child.expect("you> ")
    child.sendline("ideas please")
    child.expect("collected idea 2")
    child.expect("you> ")
    child.sendline("/keep 1")
    child.expect("kept 1")
    child.expect("you> ")
    if ending == "ctrl-c":
        child.sendintr()
    else:
        child.sendeof()
    child.expect(r"\[Y/n\]")
    child.sendline("")
    child.expect("saved 1 idea")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # The clash with the existing Name got a suffix; the existing entry is untouched.
    assert [e["Name"] for e in json.loads(out.read_text())] == [
        "label_smoothing_sweep",
        "label_smoothing_sweep_2",
    ]


def test_declining_to_save_keeps_the_ideas_in_the_store(chat_env, tmp_path, isolated_home):
    child = spawn_chat(tmp_path, chat_env)
    child.expect("you> ")
    child.sendline("ideas please")
    child.expect("you> ")
    child.sendline("/keep 1")
    child.sendeof()
    child.expect(r"\[Y/n\]")
    child.sendline("n")
    child.expect("they stay in the store")
    child.expect(pexpect.EOF)
    assert not (tmp_path / "seed_ideas.json").exists()
    with Store.open(isolated_home) as store:
        assert {s.idea.Name for s in store.ideas()} >= {"label_smoothing_sweep"}


def test_help_and_unknown_commands(chat_env, tmp_path):
    child = spawn_chat(tmp_path, chat_env)
    child.expect("you> ")
    child.sendline("/help")
    child.expect(r"/refine N TEXT")
    child.sendline("/frobnicate")
    child.expect("unknown command /frobnicate")
    child.sendline("/save")
    child.expect("nothing kept yet")
    child.sendline("/keep x")
    child.expect("usage: /keep N")
    child.sendline("/quit")
    child.expect("bye")
    child.expect(pexpect.EOF)


def test_extract_ideas_reads_fenced_blocks_and_skips_invalid_ones():
    text = (
        "Intro\n```json\n" + json.dumps(idea_json("Good Idea!", "T", "E")) + "\n```\n"
        "```json\n[" + json.dumps(idea_json("second", "T2", "E2")) + "]\n```\n"
        '```json\n{not json}\n```\n```json\n{"Name": "only_a_name"}\n```'
    )
    ideas, invalid = extract_ideas(text)
    assert [idea.Name for idea in ideas] == ["good_idea", "second"]
    assert invalid == 2
