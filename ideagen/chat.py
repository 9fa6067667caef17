"""A conversation with the model about seed ideas, as a researcher would have with Claude.

The model sees the template (cached prefix) and the whole conversation. It is asked to write
every idea it proposes as a fenced JSON block; those blocks are parsed, validated and
collected as numbered proposals that the person keeps, drops, refines and saves. Every message
goes into the store's transcript and every proposal into the store, so nothing is lost when the
session ends abruptly.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ideagen.brainstorm import IdeaDraft, draft_fields
from ideagen.ideafile import IdeaFileError, append_ideas
from ideagen.providers.base import LanguageModel, Message, ModelError
from ideagen.resources import render_prompt
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.template_prompt import TemplateContext

FENCED_JSON = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
CHAT_MAX_TOKENS = 2048


@dataclass
class Proposal:
    number: int
    idea: Idea
    store_id: int
    kept: bool = False
    saved_to: set[Path] = field(default_factory=set)


@dataclass(frozen=True)
class ChatTurn:
    text: str
    proposals: list[Proposal]
    invalid_blocks: int


@dataclass(frozen=True)
class SaveOutcome:
    path: Path
    saved: list[Idea]


class ChatError(Exception):
    """A command that cannot be done (unknown idea number...): one line for the person."""


def extract_ideas(text: str) -> tuple[list[Idea], int]:
    """The ideas in fenced JSON blocks of a reply, and how many blocks were not valid ideas."""
    ideas: list[Idea] = []
    invalid = 0
    for block in FENCED_JSON.findall(text):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            invalid += 1
            continue
        for item in data if isinstance(data, list) else [data]:
            try:
                ideas.append(IdeaDraft.model_validate(item).to_idea())
            except ValidationError:
                invalid += 1
    return ideas, invalid


class ChatSession:
    def __init__(
        self,
        model: LanguageModel,
        store: Store,
        template: TemplateContext,
        *,
        topic: str | None = None,
        session_id: str | None = None,
    ):
        self.model = model
        self.store = store
        self.template = template
        self.topic = topic.strip() if topic else None
        self.session_id = session_id or self.new_session_id()
        self.history: list[Message] = []
        self.proposals: list[Proposal] = []
        self._system = render_prompt("chat_system", template_system=template.system)
        self._context = template.cached_prefix()

    @staticmethod
    def new_session_id() -> str:
        return f"chat-{uuid.uuid4().hex[:12]}"

    @property
    def kept(self) -> list[Proposal]:
        return [p for p in self.proposals if p.kept]

    @property
    def unsaved(self) -> list[Proposal]:
        """Kept ideas not yet written to any file."""
        return [p for p in self.kept if not p.saved_to]

    def opening_message(self) -> str | None:
        """What to send first when a topic was given on the command line."""
        return render_prompt("chat_opening", topic=self.topic) if self.topic else None

    def send(self, text: str) -> ChatTurn:
        """One exchange: the person's text in, the model's reply and its new proposals out."""
        message = Message(role="user", content=text)
        reply = self.model.complete(
            [*self.history, message],
            system=self._system,
            context=self._context,
            max_tokens=CHAT_MAX_TOKENS,
            purpose="chat",
        )
        self.history += [message, Message(role="assistant", content=reply.text)]
        self._log("user", text)
        self._log("assistant", reply.text)
        ideas, invalid = extract_ideas(reply.text)
        return ChatTurn(reply.text, [self._propose(idea) for idea in ideas], invalid)

    def proposal(self, number: int) -> Proposal:
        for proposal in self.proposals:
            if proposal.number == number:
                return proposal
        raise ChatError(f"no idea number {number} (see /ideas)")

    def keep(self, number: int) -> Proposal:
        proposal = self.proposal(number)
        proposal.kept = True
        self._log("command", f"/keep {number}")
        return proposal

    def drop(self, number: int) -> Proposal:
        proposal = self.proposal(number)
        self.proposals.remove(proposal)
        self._log("command", f"/drop {number}")
        return proposal

    def refine(self, number: int, request: str) -> Proposal:
        """Ask the model to revise proposal `number`; the revision replaces it, keep flag kept."""
        proposal = self.proposal(number)
        prompt = render_prompt(
            "chat_refine",
            idea_json=json.dumps(draft_fields(proposal.idea), indent=2, ensure_ascii=False),
            request=request,
        )
        message = Message(role="user", content=prompt)
        draft = self.model.structured(
            [*self.history, message],
            IdeaDraft,
            system=self._system,
            context=self._context,
            max_tokens=CHAT_MAX_TOKENS,
            purpose="chat-refine",
        )
        revised = draft.to_idea()
        answer = json.dumps(draft_fields(revised), indent=2, ensure_ascii=False)
        self.history += [message, Message(role="assistant", content=f"```json\n{answer}\n```")]
        self._log("user", f"/refine {number} {request}")
        self._log("assistant", answer)
        proposal.idea = revised
        proposal.saved_to.clear()
        proposal.store_id = self.store.add_idea(
            revised,
            topic=self.topic,
            model=self._model_label(),
            template=self.template.name,
            parent_id=proposal.store_id,
            run_id=self.session_id,
        )
        return proposal

    def save(self, path: str | Path) -> SaveOutcome:
        """Append kept ideas to `path` (existing entries kept exactly, Name clashes suffixed)."""
        path = Path(path).resolve()
        todo = [p for p in self.kept if path not in p.saved_to]
        saved = append_ideas(path, [p.idea for p in todo])
        for proposal in todo:
            proposal.saved_to.add(path)
        self._log("command", f"/save {path} ({len(saved)} ideas)")
        return SaveOutcome(path, saved)

    def _propose(self, idea: Idea) -> Proposal:
        number = max((p.number for p in self.proposals), default=0) + 1
        store_id = self.store.add_idea(
            idea,
            topic=self.topic,
            model=self._model_label(),
            template=self.template.name,
            run_id=self.session_id,
        )
        proposal = Proposal(number, idea, store_id)
        self.proposals.append(proposal)
        return proposal

    def _model_label(self) -> str:
        return f"{self.model.provider}:{self.model.model}"

    def _log(self, role: str, content: str) -> None:
        self.store.add_transcript(self.session_id, role, content)


HELP = """Commands:
  /ideas            list the ideas proposed so far (* = kept)
  /keep N [M ...]   keep ideas by number
  /drop N [M ...]   forget ideas by number
  /refine N TEXT    ask the model to revise idea N as TEXT says
  /save [FILE]      append the kept ideas to FILE (default: {out})
  /help             this list
  /quit             end (Ctrl-D and Ctrl-C too); unsaved kept ideas are offered for saving
Anything else is sent to the model."""


class ChatRepl:
    """The terminal conversation: plain input() and print(), so it works under any pty."""

    def __init__(self, session: ChatSession, default_out: Path, *, read=input, write=print):
        self.session = session
        self.default_out = Path(default_out)
        self.read = read
        self.write = write

    def run(self) -> int:
        self.write(
            f"ideagen chat with {self.session.model.provider}:{self.session.model.model} "
            f"about template {self.session.template.name}. /help for commands."
        )
        try:
            opening = self.session.opening_message()
            if opening:
                self.write(f"you> {opening}")
                self._send(opening)
            while True:
                line = self.read("you> ").strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if not self._command(line):
                        break
                else:
                    self._send(line)
        except (EOFError, KeyboardInterrupt):
            self.write("")
        return self._finish()

    def _send(self, text: str) -> None:
        try:
            turn = self.session.send(text)
        except ModelError as exc:
            self.write(f"error: {exc}")
            return
        self.write(f"model> {turn.text.strip()}")
        for proposal in turn.proposals:
            self.write(
                f"  collected idea {proposal.number}: {proposal.idea.Name} - "
                f"{proposal.idea.Title}  (/keep {proposal.number})"
            )
        if turn.invalid_blocks:
            self.write(f"  ({turn.invalid_blocks} JSON block(s) were not valid ideas, skipped)")

    def _command(self, line: str) -> bool:
        """Run one /command; False means the session should end."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if name == "/quit":
                return False
            if name == "/help":
                self.write(HELP.format(out=self.default_out))
            elif name == "/ideas":
                self._list()
            elif name == "/keep":
                for number in _numbers(rest, name):
                    proposal = self.session.keep(number)
                    self.write(f"kept {number}: {proposal.idea.Name}")
            elif name == "/drop":
                for number in _numbers(rest, name):
                    proposal = self.session.drop(number)
                    self.write(f"dropped {number}: {proposal.idea.Name}")
            elif name == "/refine":
                number_text, _, request = rest.partition(" ")
                if not request.strip():
                    raise ChatError("usage: /refine N TEXT")
                proposal = self.session.refine(_numbers(number_text, name)[0], request.strip())
                self.write(f"revised {proposal.number}:")
                self._show(proposal)
            elif name == "/save":
                self._save(Path(rest) if rest else self.default_out)
            else:
                self.write(f"unknown command {name}; /help lists the commands")
        except (ChatError, ModelError, IdeaFileError) as exc:
            self.write(f"error: {exc}")
        return True

    def _list(self) -> None:
        if not self.session.proposals:
            self.write("no ideas proposed yet")
        for proposal in self.session.proposals:
            self._show(proposal)

    def _show(self, proposal: Proposal) -> None:
        idea = proposal.idea
        mark = "*" if proposal.kept else " "
        self.write(f"{mark}{proposal.number}. {idea.Name} - {idea.Title}")
        self.write(
            f"    I{idea.Interestingness} F{idea.Feasibility} N{idea.Novelty}: {idea.Experiment}"
        )

    def _save(self, path: Path) -> None:
        if not self.session.kept:
            self.write("nothing kept yet: /keep N first")
            return
        outcome = self.session.save(path)
        self.write(f"saved {len(outcome.saved)} idea(s) to {outcome.path}")

    def _finish(self) -> int:
        unsaved = self.session.unsaved
        if unsaved:
            try:
                answer = self.read(
                    f"save {len(unsaved)} kept idea(s) to {self.default_out}? [Y/n] "
                )
            except (EOFError, KeyboardInterrupt):
                answer = "y"
                self.write("")
            if answer.strip().lower() in ("", "y", "yes"):
                try:
                    self._save(self.default_out)
                except IdeaFileError as exc:
                    self.write(f"error: {exc}")
                    return 1
            else:
                self.write(f"not saved; they stay in the store (session {self.session.session_id})")
        self.write("bye")
        return 0


def _numbers(text: str, command: str) -> list[int]:
    parts = text.split()
    if not parts or not all(part.isdigit() for part in parts):
        raise ChatError(f"usage: {command} N (an idea number from /ideas)")
    return [int(part) for part in parts]
