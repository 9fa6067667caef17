"""llama.cpp through node-llama-cpp's prebuilt binaries, driven by one bridge process.

PyPI offers llama-cpp-python only as source (about 20 minutes to compile on a small machine);
npm's node-llama-cpp ships llama.cpp prebuilt, so the default engine is a Node process running
ideagen's own bridge.mjs. It loads the model once and answers JSON-line requests on one context
sequence, which keeps the previous prompt's tokens: a call that starts like the last one skips
re-reading the shared prefix. The bridge exits when this process closes its stdin or dies.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import queue
import shutil
import subprocess
import threading
from collections import deque
from importlib.resources import files
from pathlib import Path
from typing import Any

from ideagen.local.engine import Engine, Generation, Progress
from ideagen.local.models import INSTALL_COMMAND, ModelInstallError, cache_root
from ideagen.providers.base import Message, ModelError

VERSION = "3.21.1"
READY_TIMEOUT_S = 600.0  # loading reads the whole model file from disk
SILENCE_TIMEOUT_S = 600.0  # the bridge reports every few tokens; longer silence means it hangs
STDERR_LINES = 20
NODE_MAJOR = 20
# node-llama-cpp's prebuilt llama.cpp packages, by (system, machine).
PREBUILT = {
    ("Linux", "x86_64"): "@node-llama-cpp/linux-x64",
    ("Linux", "aarch64"): "@node-llama-cpp/linux-arm64",
    ("Darwin", "arm64"): "@node-llama-cpp/mac-arm64-metal",
    ("Darwin", "x86_64"): "@node-llama-cpp/mac-x64",
    ("Windows", "AMD64"): "@node-llama-cpp/win-x64",
}


def runtime_dir() -> Path:
    return cache_root() / f"node-llama-cpp-{VERSION}"


def prebuilt_package() -> str:
    key = (platform.system(), platform.machine())
    if key not in PREBUILT:
        raise ModelError(
            f"node-llama-cpp has no prebuilt llama.cpp for {key[0]} {key[1]}; "
            "install llama-cpp-python instead: pip install 'ideagen[llama-cpp]'"
        )
    return PREBUILT[key]


def runtime_installed(folder: Path | None = None) -> bool:
    folder = folder or runtime_dir()
    modules = folder / "node_modules"
    try:
        version = json.loads((modules / "node-llama-cpp" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return False
    return version == VERSION and (modules / prebuilt_package() / "package.json").is_file()


def node_program() -> str:
    """The `node` executable, version 20 or newer, or a one-line ModelError."""
    node = shutil.which("node")
    if node is None:
        raise ModelError(f"the local model needs Node.js {NODE_MAJOR} or newer on PATH")
    done = subprocess.run([node, "--version"], capture_output=True, text=True)
    major = done.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < NODE_MAJOR:
        raise ModelError(
            f"the local model needs Node.js {NODE_MAJOR} or newer; {node} is {done.stdout.strip()}"
        )
    return node


def install_runtime(force: bool = False) -> Path:
    """node-llama-cpp and its prebuilt llama.cpp, pinned, installed by npm into the cache.

    Installed into a folder beside the target and renamed into place when complete.
    """
    target = runtime_dir()
    if runtime_installed(target) and not force:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise ModelInstallError("installing node-llama-cpp needs npm (part of Node.js) on PATH")
    node_program()
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        (partial / "package.json").write_text('{"private": true}\n')
        command = [
            npm,
            "install",
            "--save-exact",
            "--omit=optional",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"node-llama-cpp@{VERSION}",
            f"{prebuilt_package()}@{VERSION}",
        ]
        done = subprocess.run(command, cwd=partial, capture_output=True, text=True)
        if done.returncode != 0 or not runtime_installed(partial):
            said = (done.stderr or done.stdout).strip().splitlines()
            raise ModelInstallError(
                f"npm could not install node-llama-cpp {VERSION}: "
                f"{said[-1] if said else f'exit status {done.returncode}'}"
            )
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


class NodeEngine(Engine):
    kind = "node"

    def __init__(self, model: Path, *, threads: int, context_size: int):
        if not runtime_installed():
            raise ModelError(f"the local model's runtime is not installed; run: {INSTALL_COMMAND}")
        bridge = files("ideagen.local").joinpath("bridge.mjs")
        command = [
            node_program(),
            str(bridge),
            "--runtime",
            str(runtime_dir()),
            "--model",
            str(model),
            "--threads",
            str(threads),
            "--context-size",
            str(context_size),
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._lock = threading.Lock()
        self._next_id = 0
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        atexit.register(self.close)
        ready = self._receive(READY_TIMEOUT_S)
        if ready.get("event") != "ready":
            self.close()
            raise ModelError(f"the local model did not load: {ready.get('message', ready)}")
        self.load_s = float(ready["load_s"])
        self.context_size = int(ready["context_size"])

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._messages.put(json.loads(line))
            except ValueError:
                self._stderr.append(line.rstrip())
        self._messages.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line.rstrip())

    def _receive(self, timeout: float) -> dict[str, Any]:
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise ModelError(f"the local model's bridge was silent for {timeout:.0f} s") from None
        if message is None:
            said = "; ".join(line for line in self._stderr if line.strip())[-500:]
            raise ModelError(
                f"the local model's bridge stopped (exit status {self.process.wait()})"
                + (f": {said}" if said else "")
            )
        return message

    def generate(
        self,
        system: str | None,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        max_tokens: int,
        on_progress: Progress | None = None,
    ) -> Generation:
        with self._lock:
            self._next_id += 1
            request = {
                "id": self._next_id,
                "system": system,
                "messages": [message.model_dump() for message in messages],
                "schema": schema,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                self._receive(0.1)  # reports why the bridge stopped
                raise
            while True:
                message = self._receive(SILENCE_TIMEOUT_S)
                if message.get("id") != request["id"]:
                    continue
                if message["event"] == "progress":
                    if on_progress:
                        on_progress(int(message["tokens_out"]))
                elif message["event"] == "error":
                    raise ModelError(f"the local model failed: {message['message']}")
                elif message["event"] == "done":
                    return Generation(
                        text=message["text"],
                        cut=message["stop"] == "maxTokens",
                        tokens_in=message["tokens_in"],
                        tokens_evaluated=message["tokens_evaluated"],
                        tokens_out=message["tokens_out"],
                        prompt_s=message["prompt_s"],
                        decode_s=message["decode_s"],
                    )

    def close(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
