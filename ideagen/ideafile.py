"""Reading and writing idea files: typed ideas in, precise problems out, atomic saves.

A file that is loaded and saved unchanged comes back byte for byte: the JSON layout
(indent, ASCII escaping, trailing newline) is detected on load and reused on save.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import ValidationError

from ideagen.schema import (
    RATING_FIELDS,
    Idea,
    Problem,
    describe_entry_problems,
    duplicate_name_warnings,
    size_warnings,
    validation_problem,
)

# Idea files nest three levels deep; far deeper input is hostile or broken, and rendering it
# back would exhaust Python's recursion limit.
MAX_NESTING = 64


class IdeaFileError(Exception):
    """The file cannot be read or is not a JSON list: nothing in it can be trusted."""


@dataclass(frozen=True)
class JsonStyle:
    indent: int | str = 4
    ensure_ascii: bool = False
    trailing_newline: bool = False

    def render(self, data: Any) -> str:
        text = json.dumps(data, indent=self.indent, ensure_ascii=self.ensure_ascii)
        return text + "\n" if self.trailing_newline else text


DEFAULT_STYLE = JsonStyle()


@dataclass
class IdeaFile:
    """A loaded file: the valid ideas, the raw entries, and every problem found."""

    path: Path
    ideas: list[Idea]
    entries: list[Any]
    problems: list[Problem]
    style: JsonStyle = DEFAULT_STYLE
    original_text: str | None = field(default=None, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def load_ideas(path: str | Path, missing_ok: bool = False) -> IdeaFile:
    """Read an idea file. Raises IdeaFileError when it cannot be read or parsed at all."""
    path = Path(path)
    label = str(path)
    if missing_ok and not path.exists():
        return IdeaFile(path, [], [], [])
    text = read_user_text(path, "a JSON file", IdeaFileError)
    if not text.strip():
        raise IdeaFileError(f"{label}: the file is empty, expected a JSON list of ideas")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IdeaFileError(
            f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise IdeaFileError(f"{label}: the JSON is nested too deeply to be an idea list") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise IdeaFileError(f"{label}: invalid JSON: {first_sentence(exc)}") from None
    if nesting_depth(data) > MAX_NESTING:
        raise IdeaFileError(f"{label}: the JSON is nested too deeply to be an idea list")
    if not isinstance(data, list):
        kind = type(data).__name__.replace("dict", "object")
        raise IdeaFileError(f"{label}: the top level is a JSON {kind}, expected a list of ideas")

    ideas, problems = parse_entries(label, data)
    return IdeaFile(path, ideas, data, problems, detect_style(text, data), text)


def read_user_text(path: Path, expected: str, error: type[Exception]) -> str:
    """A file the user named, as UTF-8 text; any reason it cannot be read becomes `error`
    with a one-line message naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected {expected}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None


def nesting_depth(data: Any) -> int:
    """How deeply lists and objects nest (iteratively: deep input must not exhaust the stack)."""
    deepest, pending = 0, [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, list | dict):
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return deepest


def unusable_json(error: Exception) -> str:
    """Why json.loads refused a user's file beyond a syntax error, in a few words."""
    if isinstance(error, RecursionError):
        return "the JSON is nested too deeply"
    return f"invalid JSON: {first_sentence(error)}"


def first_sentence(error: Exception) -> str:
    return str(error).split(";")[0].split("\n")[0]


def parse_entries(label: str, entries: list[Any]) -> tuple[list[Idea], list[Problem]]:
    ideas: list[Idea] = []
    problems: list[Problem] = []
    for index, entry in enumerate(entries):
        entry_problems = describe_entry_problems(label, index, entry)
        if not entry_problems:
            try:
                ideas.append(Idea.from_entry(entry))
            except ValidationError as error:
                entry_problems = [validation_problem(label, index, entry, error)]
        problems.extend(entry_problems)
        problems.extend(size_warnings(label, index, entry))
    problems.extend(duplicate_name_warnings(label, entries))
    return ideas, problems


def detect_style(text: str, data: Any) -> JsonStyle:
    """The json.dumps settings that reproduce `text`, or the default when none does."""
    trailing = text.endswith("\n")
    indent_match = re.search(r"\n([ \t]+)\S", text)
    guesses: list[int | str] = []
    if indent_match:
        unit = indent_match.group(1)
        guesses.append("\t" if unit.startswith("\t") else len(unit))
    guesses += [4, 2]
    for indent in guesses:
        for ensure_ascii in (False, True):
            style = JsonStyle(indent, ensure_ascii, trailing)
            if style.render(data) == text:
                return style
    ascii_only = text.isascii() and "\\u" in text
    indent = guesses[0] if guesses else 4
    return JsonStyle(indent, ascii_only, trailing)


def render_ideas(ideas: list[Idea], style: JsonStyle = DEFAULT_STYLE) -> str:
    return style.render([idea.to_entry() for idea in ideas])


def save_ideas(path: str | Path, ideas: list[Idea], like: IdeaFile | None = None) -> None:
    """Write ideas atomically. With `like`, keep that file's layout (and its exact bytes
    when the ideas are unchanged, so hand-formatted files survive a load/save)."""
    entries = [idea.to_entry() for idea in ideas]
    if like is not None and like.original_text is not None and entries == like.entries:
        text = like.original_text
    else:
        text = (like.style if like else DEFAULT_STYLE).render(entries)
    write_output(Path(path), text)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over the target.
    A symlink is written through (its target is replaced, the link stays)."""
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temp_name, path.stat().st_mode & 0o777)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new file next to `path`, created with mode 0666 so the OS applies the umask (mkstemp
    would make it 0600 and another account on a shared machine could not read the result)."""
    while True:
        name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), name
        except FileExistsError:
            continue


class OutputError(Exception):
    """An output file that cannot be written; one line naming it and why."""


def check_output_path(path: Path, what: str) -> None:
    """Raise OutputError now, before any paid work, when `path` could not be written later:
    a folder, under a file, or in a folder this user cannot write to."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; name a file for {what}")
    existing = target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot write {what} there: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write {what} there: {existing} is not writable")


def write_output(path: Path, text: str) -> None:
    """atomic_write_text, with any OS failure (disk full, permissions) as OutputError; the
    old file, if any, is left as it was."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock of an idea file, shared by threads and processes, for a read-merge-write.

    The lock is a separate `.NAME.lock` file: the idea file itself is replaced on every write,
    so a lock on it would not outlive the write."""
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.parent / f".{path.name}.lock", is_singleton=True):
        yield


def append_ideas(path: Path, ideas: list[Idea]) -> list[Idea]:
    """Append ideas in one atomic write under the file's lock, re-reading the file first, so
    that concurrent writers (threads or processes) lose nothing. Every existing entry (valid
    or not) and the file's layout are kept exactly; a Name already in the file gets a suffix.
    Returns what was written."""
    with locked(path):
        loaded = load_ideas(path, missing_ok=True)
        entries = list(loaded.entries)
        taken = {entry.get("Name") for entry in entries if isinstance(entry, dict)}
        written = []
        for idea in ideas:
            idea = idea.model_copy(update={"Name": unique_name(idea.Name, taken)})
            taken.add(idea.Name)
            entries.append(idea.to_entry())
            written.append(idea)
        if written:
            atomic_write_text(path, loaded.style.render(entries))
    return written


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`, ... whichever is not yet taken."""
    if name not in taken:
        return name
    suffix = 2
    while f"{name}_{suffix}" in taken:
        suffix += 1
    return f"{name}_{suffix}"


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug or "idea"


@dataclass
class FixResult:
    entries: list[Any]
    changes: list[str]
    remaining: list[Problem]


def fix_entries(label: str, entries: list[Any]) -> FixResult:
    """Repair what can be repaired without guessing; report every change made."""
    changes: list[str] = []
    fixed: list[Any] = []
    taken: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            fixed.append(entry)
            continue
        entry = dict(entry)
        where = f"{label}: entry {index}"
        for rating in RATING_FIELDS:
            value = entry.get(rating)
            if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value.strip(), re.ASCII):
                entry[rating] = int(value.strip())
                changes.append(f"{where}: {rating}: {value!r} -> {entry[rating]}")
            elif isinstance(value, float) and value.is_integer():
                entry[rating] = int(value)
                changes.append(f"{where}: {rating}: {value} -> {entry[rating]}")
        experiment = entry.get("Experiment")
        if isinstance(experiment, list) and all(isinstance(s, str) for s in experiment):
            entry["Experiment"] = " ".join(step.strip() for step in experiment if step.strip())
            changes.append(f"{where}: Experiment: list of {len(experiment)} steps joined")
        name = entry.get("Name")
        if isinstance(name, str) and name.strip():
            new_name = slugify(name) if not re.fullmatch(r"[a-z0-9_]+", name) else name
            new_name = unique_name(new_name, taken)
            if new_name != name:
                entry["Name"] = new_name
                changes.append(f"{where}: Name: {name!r} -> {new_name!r}")
            taken.add(new_name)
        fixed.append(entry)
    _, problems = parse_entries(label, fixed)
    return FixResult(fixed, changes, [p for p in problems if p.severity == "error"])
