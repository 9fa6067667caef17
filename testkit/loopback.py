"""A real HTTP server on 127.0.0.1 that speaks the Anthropic Messages API and the OpenAI
Chat Completions API, with scripted replies and scripted faults.

The real SDKs talk to it through their base URL setting, so everything up to the socket is
the production code path. Replies use the APIs' own JSON shapes; prompt caching is simulated
(on Anthropic, a cache_control-marked prefix of at least `min_cacheable_tokens` (1024) is
billed as a cache write the first time and as cache reads within 5 minutes after; on OpenAI,
a prompt sharing a 1024+ token prefix with an earlier one reports it as cached_tokens, in
128-token steps). Tokens are estimated as len(text) // 4.

Checks the real APIs make are made here too: a missing or unknown key gives 401
(`valid_keys`), an unknown model 404 (`known_models`), a request without model, messages or
(Anthropic) max_tokens 400. `requests` records every request with its headers, for
asserting what was sent (`api_key` reads x-api-key or the bearer token; `purpose` reads the
X-Ideagen-Purpose header ideagen sends, so a responder can answer by what a call is for).

Use in tests (tests/conftest.py provides the fixture `loopback`, a started server; or start
one yourself: `with LoopbackServer() as server: ...`)::

    from testkit.loopback import Fault, Reply

    def test_something(loopback, monkeypatch):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        loopback.script(Fault.rate_limited(retry_after=1), Reply("hello"))
        ...
        assert loopback.requests[-1].api_key == "sk-test"

Scripting. Each model request takes the next step from the queue given to `script(...)`
(a step is a `Reply`, a `Fault` or a plain string meaning `Reply(text)`). When the queue is
empty, `responder` (a callable receiving the parsed `ReceivedRequest`, returning a step) is
asked; without one, the server answers 400 "no scripted reply left" so a test that runs out
of script fails loudly instead of hanging. A reply longer than the request's max_tokens is
cut there and marked stop_reason "max_tokens" / finish_reason "length", as the real APIs do.

Structured output, as the real APIs offer it. Anthropic: a request with `tools` and a
`tool_choice` of {"type": "tool", "name": N} gets its reply as one `tool_use` block for N whose
`input` is the JSON object in the scripted text (a forced tool call always yields an object; text
holding none gives {}), with stop_reason "tool_use". OpenAI: `response_format` {"type":
"json_schema", ...} is accepted and the scripted text is the message content; a strict schema is
checked as OpenAI does (every object lists all its properties in `required` and sets
additionalProperties false, and uses only the keywords strict mode supports), else 400. Set
`supports_response_format = False` to act like a server without it (400 naming response_format).
The scripted text is never changed to fit the schema: a test or benchmark scripts what a model
in that mode would say.

Standalone: `python -m testkit.loopback [--port N] [--latency S]` serves until Ctrl-C; every
request then gets a reply echoing the last user message.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
# The JSON Schema keywords OpenAI's strict structured outputs accept.
OPENAI_STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "anyOf", "$ref", "$defs", "description", "title", "pattern", "format", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
}  # fmt: skip
OPENAI_MIN_CACHED_TOKENS = 1024
OPENAI_CACHE_INCREMENT = 128
ANTHROPIC_CACHE_TTL_S = 300.0


def estimate_tokens(text: str) -> int:
    return len(text) // 4


@dataclass(frozen=True)
class Reply:
    """A successful model reply. `text` longer than max_tokens is cut as the APIs do."""

    text: str


@dataclass(frozen=True)
class Fault:
    """A scripted failure. Build one with the class methods."""

    kind: str  # "status", "hang", "html", "drop"
    status: int = 500
    error_type: str | None = None
    message: str = "scripted fault"
    retry_after: float | None = None
    seconds: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        """429 with a retry-after header (seconds; None sends no header)."""
        return cls("status", 429, message="rate limited", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status, message="internal server error")

    @classmethod
    def overloaded(cls) -> Fault:
        """Anthropic's 529 overloaded_error (OpenAI-style clients see a 529 status too)."""
        return cls("status", 529, message="Overloaded")

    @classmethod
    def error(cls, status: int, message: str, error_type: str | None = None) -> Fault:
        """Any error status, e.g. Fault.error(404, "model: nope") or a 400 invalid request."""
        return cls("status", status, error_type=error_type, message=message)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Send nothing for `seconds` (then a normal reply), to run past the client timeout."""
        return cls("hang", seconds=seconds)

    @classmethod
    def html_page(cls) -> Fault:
        """An HTML page with status 200, as a captive portal or wrong base URL gives."""
        return cls("html", 200)

    @classmethod
    def drop_connection(cls) -> Fault:
        """Close the socket without answering."""
        return cls("drop")


MALFORMED_JSON = '{"Name": "broken_reply", "Title": "A reply whose JSON never closes'
"""Reply text with malformed JSON inside, for Reply(MALFORMED_JSON)."""

Step = Reply | Fault | str
Responder = Callable[["ReceivedRequest"], Step]


@dataclass
class ReceivedRequest:
    """One request as the server saw it (header names lower-cased)."""

    api: str  # "anthropic" or "openai"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float

    @property
    def api_key(self) -> str:
        bearer = self.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return self.headers.get("x-api-key", "") or bearer

    @property
    def purpose(self) -> str:
        """What ideagen says the call is for ("review.judge", "brainstorm-draft"...), or ""."""
        return self.headers.get("x-ideagen-purpose", "")

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def max_tokens(self) -> int:
        value = self.body.get("max_tokens") or self.body.get("max_completion_tokens") or 4096
        return int(value)

    @property
    def system_text(self) -> str:
        """All system text: Anthropic's `system` (string or blocks) or OpenAI system messages."""
        if self.api == "anthropic":
            return _blocks_text(self.body.get("system") or "")
        return "\n".join(
            _blocks_text(m.get("content") or "")
            for m in self.body.get("messages", [])
            if m.get("role") in ("system", "developer")
        )

    @property
    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of the conversation messages, system messages excluded."""
        return [
            (m.get("role", ""), _blocks_text(m.get("content") or ""))
            for m in self.body.get("messages", [])
            if m.get("role") not in ("system", "developer")
        ]

    @property
    def last_user_text(self) -> str:
        users = [text for role, text in self.messages if role == "user"]
        return users[-1] if users else ""

    @property
    def prompt_text(self) -> str:
        return self.system_text + "".join(text for _, text in self.messages)

    def cache_control_blocks(self) -> list[dict[str, Any]]:
        """Every content block (system or message) that carries cache_control."""
        blocks: list[Any] = []
        system = self.body.get("system")
        if isinstance(system, list):
            blocks.extend(system)
        for message in self.body.get("messages", []):
            if isinstance(message.get("content"), list):
                blocks.extend(message["content"])
        return [b for b in blocks if isinstance(b, dict) and "cache_control" in b]


def _blocks_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


class LoopbackServer:
    """The server. Start with `start()` (or use as a context manager); `stop()` ends it."""

    def __init__(self, *, port: int = 0, latency_s: float = 0.0, min_cacheable_tokens: int = 1024):
        self.latency_s = latency_s
        self.min_cacheable_tokens = min_cacheable_tokens
        self.responder: Responder | None = None
        self.valid_keys: set[str] | None = None  # None: any non-empty key is accepted
        self.known_models: set[str] | None = None  # None: any model name is accepted
        self.echo_key_in_errors = False  # a careless server that repeats the key in its 401
        self.supports_response_format = True  # False: 400 for response_format json_schema
        self.requests: list[ReceivedRequest] = []
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._anthropic_cache: dict[tuple[str, str], float] = {}
        self._openai_prompts: list[str] = []
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.loopback = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def anthropic_url(self) -> str:
        """For ANTHROPIC_BASE_URL / Anthropic(base_url=...)."""
        return self.url

    @property
    def openai_url(self) -> str:
        """For OPENAI_BASE_URL / OpenAI(base_url=...) (the SDK expects the /v1 prefix)."""
        return self.url + "/v1"

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *steps: Step) -> None:
        """Queue steps; each model request consumes one, in order."""
        with self._lock:
            self._steps.extend(steps)

    @property
    def pending_steps(self) -> int:
        with self._lock:
            return len(self._steps)

    def requests_for(self, api: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.api == api]

    # used by the handler

    def _next_step(self, request: ReceivedRequest) -> Step | None:
        with self._lock:
            self.requests.append(request)
            if self._steps:
                return self._steps.popleft()
        return self.responder(request) if self.responder else None

    def _anthropic_cache_usage(self, request: ReceivedRequest) -> tuple[int, int]:
        """(cache_creation_input_tokens, cache_read_input_tokens) for the marked prefix."""
        marked = request.cache_control_blocks()
        if not marked:
            return 0, 0
        prefix, prefix_text = _anthropic_prefix_through(request.body, marked[-1])
        tokens = estimate_tokens(prefix_text)
        if tokens < self.min_cacheable_tokens:
            return 0, 0
        key = (request.model, prefix)
        now = time.monotonic()
        with self._lock:
            seen = self._anthropic_cache.get(key)
            self._anthropic_cache[key] = now
        if seen is not None and now - seen < ANTHROPIC_CACHE_TTL_S:
            return 0, tokens
        return tokens, 0

    def _openai_cached_tokens(self, request: ReceivedRequest) -> int:
        prompt = json.dumps(request.body.get("messages", []), sort_keys=True)
        with self._lock:
            shared = max((_common_prefix_len(prompt, p) for p in self._openai_prompts), default=0)
            if prompt not in self._openai_prompts:
                self._openai_prompts.append(prompt)
        tokens = estimate_tokens(prompt[:shared])
        if tokens < OPENAI_MIN_CACHED_TOKENS:
            return 0
        return tokens - (tokens - OPENAI_MIN_CACHED_TOKENS) % OPENAI_CACHE_INCREMENT


def _anthropic_prefix_through(body: dict[str, Any], last_marked: dict[str, Any]) -> tuple[str, str]:
    """The blocks in cache order (system, then messages) up to the marked one: as an exact
    identity for the cache, and as plain text for counting its tokens."""
    parts: list[str] = []
    texts: list[str] = []
    system = body.get("system")
    blocks: list[Any] = [{"text": system}] if isinstance(system, str) else list(system or [])
    for message in body.get("messages", []):
        content = message.get("content")
        blocks.extend([{"text": content}] if isinstance(content, str) else content or [])
    for block in blocks:
        parts.append(json.dumps(block, sort_keys=True))
        texts.append(block.get("text", "") if isinstance(block, dict) else "")
        if block is last_marked:
            break
    return "".join(parts), "".join(texts)


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the shared start of two strings, by bisection on slice comparisons."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, keep-alive clients wait ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `server.requests` instead of a log."""

    @property
    def server_state(self) -> LoopbackServer:
        return self.server.loopback  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        api = "openai" if self.path.rstrip("/").endswith("/chat/completions") else "anthropic"
        if api == "anthropic" and not self.path.rstrip("/").endswith("/v1/messages"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_error(api, 400, "request body is not JSON")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = ReceivedRequest(api, self.path, headers, body, time.monotonic())
        state = self.server_state
        if state.latency_s:
            time.sleep(state.latency_s)
        if not self._authorized(request):
            return
        if not self._valid(request):
            return
        step = state._next_step(request)
        if step is None:
            self._send_error(api, 400, "loopback server: no scripted reply left for this request")
        elif isinstance(step, Fault):
            self._send_fault(request, step)
        else:
            self._send_reply(request, step if isinstance(step, Reply) else Reply(step))

    def _authorized(self, request: ReceivedRequest) -> bool:
        state = self.server_state
        key = request.api_key
        if key and (state.valid_keys is None or key in state.valid_keys):
            return True
        with state._lock:
            state.requests.append(request)
        if not key:
            message = "missing api key"
        elif state.echo_key_in_errors:
            message = f"invalid api key: {key}"
        else:
            message = "invalid api key"
        self._send_error(request.api, 401, message)
        return False

    def _valid(self, request: ReceivedRequest) -> bool:
        state = self.server_state
        if not request.model:
            problem = "model: field required"
        elif request.api == "anthropic" and "max_tokens" not in request.body:
            problem = "max_tokens: field required"
        elif not request.body.get("messages"):
            problem = "messages: field required"
        elif state.known_models is not None and request.model not in state.known_models:
            with state._lock:
                state.requests.append(request)
            self._send_error(request.api, 404, f"model: {request.model}", code="model_not_found")
            return False
        elif request.api == "anthropic":
            problem = _anthropic_tools_problem(request.body)
        else:
            problem = _response_format_problem(request.body, state.supports_response_format)
        if problem:
            with state._lock:
                state.requests.append(request)
            self._send_error(request.api, 400, problem)
            return False
        return True

    def _send_reply(self, request: ReceivedRequest, reply: Reply) -> None:
        text, cut = reply.text, False
        if estimate_tokens(text) > request.max_tokens:
            text, cut = text[: request.max_tokens * 4], True
        output_tokens = max(1, estimate_tokens(text))
        if request.api == "anthropic":
            write, read = self.server_state._anthropic_cache_usage(request)
            input_tokens = max(1, estimate_tokens(request.prompt_text) - write - read)
            forced = _forced_tool(request.body)
            if forced:
                content = [
                    {
                        "type": "tool_use",
                        "id": "toolu_" + uuid.uuid4().hex[:24],
                        "name": forced,
                        "input": {} if cut else _first_object(text),
                    }
                ]
                stop = "max_tokens" if cut else "tool_use"
            else:
                content = [{"type": "text", "text": text}]
                stop = "max_tokens" if cut else "end_turn"
            payload = {
                "id": "msg_" + uuid.uuid4().hex[:24],
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cache_creation_input_tokens": write,
                    "cache_read_input_tokens": read,
                },
            }
        else:
            cached = self.server_state._openai_cached_tokens(request)
            prompt_tokens = max(1, estimate_tokens(request.prompt_text), cached)
            payload = {
                "id": "chatcmpl-" + uuid.uuid4().hex[:24],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "system_fingerprint": "fp_loopback",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "length" if cut else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": prompt_tokens + output_tokens,
                    "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                },
            }
        self._send_json(200, payload)

    def _send_fault(self, request: ReceivedRequest, fault: Fault) -> None:
        if fault.kind == "hang":
            self.server_state._stopping.wait(fault.seconds)
            self._send_reply(request, Reply("a reply that arrived too late"))
        elif fault.kind == "html":
            page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body></body></html>"
            self._send_bytes(200, page, "text/html; charset=utf-8")
        elif fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
        else:
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            self._send_error(request.api, fault.status, fault.message, fault.error_type, headers)

    def _send_error(
        self,
        api: str,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        if api == "anthropic":
            kind = error_type or ANTHROPIC_ERROR_TYPES.get(status, "api_error")
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": "req_" + uuid.uuid4().hex[:24],
            }
        else:
            kind = error_type or OPENAI_ERROR_TYPES.get(status, "server_error")
            payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send_json(status, payload, headers)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self._send_bytes(status, data, "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status, _reason(status))
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout); nothing to answer


def _forced_tool(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice") or {}
    return choice.get("name") if choice.get("type") == "tool" else None


def _first_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`, or {}: a forced tool call always yields an object."""
    start = text.find("{")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:]) if start >= 0 else ({}, 0)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _anthropic_tools_problem(body: dict[str, Any]) -> str | None:
    """What the Messages API would reject in `tools` / `tool_choice`, or None."""
    tools = body.get("tools") or []
    for index, tool in enumerate(tools):
        if not tool.get("name"):
            return f"tools.{index}.name: Field required"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{index}.input_schema: Input should be a JSON Schema of type object"
    forced = _forced_tool(body)
    if forced and forced not in {tool.get("name") for tool in tools}:
        return f"tool_choice: tool {forced!r} not found in tools"
    return None


def _response_format_problem(body: dict[str, Any], supported: bool) -> str | None:
    """What a Chat Completions server would reject in `response_format`, or None."""
    form = body.get("response_format")
    if not form or form.get("type") != "json_schema":
        return None
    if not supported:
        return "response_format: type 'json_schema' is not supported by this server"
    spec = form.get("json_schema") or {}
    if not spec.get("name"):
        return "response_format.json_schema.name: field required"
    if not spec.get("strict"):
        return None
    problem = _strict_problem(spec.get("schema") or {}, ())
    return f"Invalid schema for response_format '{spec['name']}': {problem}" if problem else None


def _strict_problem(schema: Any, context: tuple[str, ...]) -> str | None:
    """The first rule of OpenAI's strict mode that `schema` breaks, or None."""
    if not isinstance(schema, dict):
        return None
    where = f"In context={context}"
    unsupported = sorted(set(schema) - OPENAI_STRICT_KEYWORDS)
    if unsupported:
        return f"{where}, '{unsupported[0]}' is not permitted."
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return f"{where}, 'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        if set(schema.get("required") or []) != set(properties):
            return (
                f"{where}, 'required' is required to be supplied and to be an array including "
                "every key in properties."
            )
    children: list[tuple[str, Any]] = [
        *((f"properties/{k}", v) for k, v in (schema.get("properties") or {}).items()),
        *((f"$defs/{k}", v) for k, v in (schema.get("$defs") or {}).items()),
        *((f"anyOf/{i}", v) for i, v in enumerate(schema.get("anyOf") or [])),
        ("items", schema.get("items")),
    ]
    for name, child in children:
        problem = _strict_problem(child, (*context, name))
        if problem:
            return problem
    return None


def _reason(status: int) -> str:
    if status == 529:
        return "Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _echo(request: ReceivedRequest) -> Step:
    return Reply(f"loopback echo: {request.last_user_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each reply")
    args = parser.parse_args()
    server = LoopbackServer(port=args.port, latency_s=args.latency)
    server.responder = _echo
    print(f"anthropic: ANTHROPIC_BASE_URL={server.anthropic_url}", flush=True)
    print(f"openai:    OPENAI_BASE_URL={server.openai_url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
