"""The SDK providers end to end against the loopback server: replies, faults, retries,
records, cost, prompt caching, the response cache, and keys that never leak."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from pydantic import BaseModel, Field
from rich.console import Console

from ideagen.providers import Message, ModelError, RetryPolicy, get_model
from ideagen.providers.common import retry_after_seconds
from ideagen.providers.pricing import BUILTIN_PRICES, load_prices, price_for
from ideagen.store import Store
from testkit.loopback import MALFORMED_JSON, Fault, LoopbackServer, Reply

ANTHROPIC_KEY = "sk-ant-test-7c1f0a9e2b"
OPENAI_KEY = "sk-openai-test-4d8e6b1c3a"
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=2.0, total_timeout_s=10.0)
CONTEXT = "def train(model, data):\n    # the template's experiment code\n" * 120  # ~1.8k tokens
ASK = [Message(role="user", content="Propose one idea.")]


class Draft(BaseModel):
    Name: str = Field(pattern=r"^[a-z0-9_]+$")
    Title: str
    Interestingness: int = Field(ge=1, le=10)


DRAFT_JSON = json.dumps(
    {"Name": "label_smoothing", "Title": "Label smoothing", "Interestingness": 6}
)


@pytest.fixture(params=["anthropic", "openai"])
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def connect(loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch, store: Store):
    """Point a provider at the loopback server the way a user would (key + base URL env)."""

    def make(provider: str, *, model: str | None = None, no_cache: bool = False, **options):
        if provider == "anthropic":
            monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
            monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
        else:
            monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
            monkeypatch.setenv("OPENAI_BASE_URL", loopback.openai_url)
        return get_model(
            provider,
            model,
            store=store,
            no_cache=no_cache,
            run_id="run-1",
            retry=options.get("retry", FAST),
        )

    return make


def calls(store: Store) -> list[tuple]:
    return store._conn.execute(
        "SELECT provider, model, status, tokens_in, tokens_out, cache_write_tokens,"
        " cache_read_tokens, cost_usd, purpose, run_id FROM model_calls ORDER BY id"
    ).fetchall()


# end to end


def test_anthropic_sends_context_as_cached_system_block(connect, loopback, store):
    model = connect("anthropic")
    loopback.script(Reply("An idea about label smoothing."))
    reply = model.complete(ASK, system="Be brief.", context=CONTEXT, purpose="draft")
    assert reply.text == "An idea about label smoothing."
    assert reply.stop_reason == "end_turn"
    sent = loopback.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.api_key == ANTHROPIC_KEY
    system = sent.body["system"]
    assert system[0] == {"type": "text", "text": CONTEXT, "cache_control": {"type": "ephemeral"}}
    assert system[1]["text"] == "Be brief."
    assert sent.body["messages"] == [{"role": "user", "content": "Propose one idea."}]
    assert sent.body["model"] == "claude-sonnet-5-5"
    (row,) = calls(store)
    assert row[:3] == ("anthropic", "claude-sonnet-5-5", "ok")
    assert row[8:] == ("draft", "run-1")
    assert row[5] == reply.usage.cache_write_tokens > 1000  # the context was written to cache


def test_openai_puts_context_first_in_one_system_message(connect, loopback, store):
    model = connect("openai", model="gpt-4o")
    loopback.script("Try mixup.")
    reply = model.complete(ASK, system="Be brief.", context=CONTEXT, max_tokens=300)
    assert reply.text == "Try mixup."
    sent = loopback.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body["messages"][0] == {"role": "system", "content": CONTEXT + "\n\nBe brief."}
    assert sent.body["messages"][1:] == [{"role": "user", "content": "Propose one idea."}]
    assert sent.body["max_tokens"] == 300 and sent.body["temperature"] == 0.7
    assert calls(store)[0][:3] == ("openai", "gpt-4o", "ok")


def test_openai_base_url_argument_reaches_a_keyless_server(loopback, store):
    loopback.script("hello from a local server")
    model = get_model("openai", "llama3", store=store, base_url=loopback.openai_url, retry=FAST)
    assert model.complete(ASK).text == "hello from a local server"
    assert loopback.requests[-1].model == "llama3"


def test_repeated_context_is_billed_as_cache_reads(connect, loopback, store, provider):
    model = connect(provider)
    loopback.script("first", "second")
    first = model.complete(ASK, context=CONTEXT)
    second = model.complete([Message(role="user", content="Another one.")], context=CONTEXT)
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens > 1000
    assert second.usage.cost_usd < first.usage.cost_usd
    spend = store.spend("run-1")
    assert spend.calls == 2 and spend.failed_calls == 0
    assert spend.cache_read_tokens == second.usage.cache_read_tokens
    assert spend.cost_usd == pytest.approx(first.usage.cost_usd + second.usage.cost_usd)


def test_cost_follows_the_price_table(connect, loopback, store):
    model = connect("anthropic")
    loopback.script("x" * 400)
    usage = model.complete(ASK, context=CONTEXT).usage
    price = BUILTIN_PRICES["claude-sonnet-5"]
    expected = (
        usage.tokens_in * price.input
        + usage.tokens_out * price.output
        + usage.cache_write_tokens * price.cache_write
    ) / 1e6
    assert usage.tokens_out == 100
    assert usage.cost_usd == pytest.approx(expected)
    assert calls(store)[0][7] == pytest.approx(expected)


# structured replies


def test_structured_reply_is_parsed_and_schema_is_sent(connect, loopback, provider):
    model = connect(provider)
    loopback.script(f"Here it is:\n```json\n{DRAFT_JSON}\n```")
    draft = model.structured(ASK, Draft, system="You draft ideas.")
    assert draft == Draft(Name="label_smoothing", Title="Label smoothing", Interestingness=6)
    assert '"Interestingness"' in loopback.requests[-1].system_text
    assert "You draft ideas." in loopback.requests[-1].system_text


@pytest.mark.parametrize(
    "bad_reply, complaint",
    [
        (MALFORMED_JSON, "malformed"),
        ("I would rather not answer in JSON.", "no JSON object"),
        ('{"Name": "Has Spaces", "Title": "t", "Interestingness": 11}', "Interestingness"),
    ],
)
def test_unusable_structured_reply_is_sent_back_for_repair(
    connect, loopback, store, provider, bad_reply, complaint
):
    model = connect(provider)
    loopback.script(bad_reply, DRAFT_JSON)
    assert model.structured(ASK, Draft).Name == "label_smoothing"
    sent_back = bad_reply
    if provider == "anthropic" and complaint in ("malformed", "no JSON object"):
        # A forced tool call always yields an object; text holding none arrives as {}.
        sent_back, complaint = "{}", "Field required"
    repair = loopback.requests[-1].messages
    assert repair[-2] == ("assistant", sent_back)
    assert complaint in repair[-1][1]
    assert [row[8] for row in calls(store)] == [None, "structured (repair 1)"]


# native structured output


class Note(BaseModel):
    text: str = Field(min_length=1)
    tags: list[str] = []  # optional: OpenAI's strict mode cannot express it


def test_anthropic_asks_for_structured_output_through_a_forced_tool(connect, loopback):
    model = connect("anthropic")
    loopback.script(DRAFT_JSON)
    assert model.structured(ASK, Draft).Name == "label_smoothing"
    body = loopback.requests[-1].body
    assert body["tools"] == [
        {
            "name": "Draft",
            "description": body["tools"][0]["description"],
            "input_schema": Draft.model_json_schema(),
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "Draft"}


def test_openai_asks_for_a_strict_json_schema_when_the_schema_allows(connect, loopback):
    model = connect("openai")
    loopback.script(DRAFT_JSON, json.dumps({"text": "a note"}))
    assert model.structured(ASK, Draft).Title == "Label smoothing"
    assert model.structured(ASK, Note) == Note(text="a note")
    strict, loose = (r.body["response_format"]["json_schema"] for r in loopback.requests)
    # The loopback rejects a strict schema the way OpenAI does, so acceptance is the check.
    assert strict["strict"] is True and strict["schema"]["additionalProperties"] is False
    assert loose["strict"] is False and loose["schema"] == Note.model_json_schema()


def test_openai_server_without_response_format_is_asked_by_instructions(connect, loopback, store):
    loopback.supports_response_format = False
    model = connect("openai", model="small-local-model")
    loopback.script(DRAFT_JSON, DRAFT_JSON)
    assert model.structured(ASK, Draft).Name == "label_smoothing"
    assert model.structured(ASK, Draft).Name == "label_smoothing"
    sent = ["response_format" in r.body for r in loopback.requests]
    assert sent == [True, False, False]  # refused once, then remembered for this model
    assert [row[2] for row in calls(store)] == ["ok", "ok"]


def test_for_run_records_under_its_own_run_id(connect, loopback, store, provider):
    model = connect(provider)
    loopback.script("first", "second")
    model.for_run("run-1/2").complete(ASK)
    model.complete(ASK)
    assert [row[9] for row in calls(store)] == ["run-1/2", "run-1"]


def test_reply_cut_by_max_tokens_is_repaired_with_a_length_note(connect, loopback, provider):
    model = connect(provider)
    long_title = "word " * 200
    loopback.script(
        json.dumps({"Name": "a", "Title": long_title, "Interestingness": 5}), DRAFT_JSON
    )
    assert model.structured(ASK, Draft, max_tokens=50).Title == "Label smoothing"
    assert "cut off at the length limit" in loopback.requests[-1].last_user_text


def test_structured_gives_up_after_two_repairs(connect, loopback, provider):
    model = connect(provider)
    loopback.script("no", "still no", "never")
    with pytest.raises(ModelError, match="no valid Draft after 3 tries"):
        model.structured(ASK, Draft)
    assert len(loopback.requests) == 3


def test_complete_reports_a_cut_reply(connect, loopback, provider):
    model = connect(provider)
    loopback.script("z" * 1000)
    reply = model.complete(ASK, max_tokens=10)
    assert reply.stop_reason == "max_tokens" and len(reply.text) == 40


# faults and retries


@pytest.mark.parametrize(
    "fault, status",
    [
        (Fault.rate_limited(retry_after=None), "rate_limited"),
        (Fault.server_error(), "server_error"),
        (Fault.server_error(503), "server_error"),
        (Fault.overloaded(), "overloaded"),
        (Fault.drop_connection(), "connection_error"),
    ],
)
def test_transient_faults_are_retried(connect, loopback, store, provider, fault, status):
    model = connect(provider)
    loopback.script(fault, fault, "recovered")
    assert model.complete(ASK).text == "recovered"
    assert [row[2] for row in calls(store)] == [status, status, "ok"]
    assert store.spend("run-1").failed_calls == 2


def test_retry_after_is_honoured(connect, loopback, provider):
    model = connect(provider)
    loopback.script(Fault.rate_limited(retry_after=0.6), "ok")
    model.complete(ASK)
    first, second = loopback.requests
    assert second.received_at - first.received_at >= 0.6


def test_a_hang_past_the_timeout_is_retried(connect, loopback, store, provider):
    policy = RetryPolicy(base_delay_s=0.01, call_timeout_s=0.5, total_timeout_s=10)
    model = connect(provider, retry=policy)
    loopback.script(Fault.hang(5), "on time")
    assert model.complete(ASK).text == "on time"
    assert [row[2] for row in calls(store)] == ["timeout", "ok"]


def test_retries_stop_at_the_attempt_limit(connect, loopback, store, provider):
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, call_timeout_s=2)
    model = connect(provider, retry=policy)
    loopback.script(*[Fault.overloaded()] * 5)
    with pytest.raises(ModelError, match="gave up after 3 attempts") as caught:
        model.complete(ASK)
    assert "\n" not in str(caught.value)
    assert len(loopback.requests) == 3 and store.spend().failed_calls == 3


def test_retries_stop_at_the_total_time_bound(connect, loopback, provider):
    policy = RetryPolicy(max_attempts=50, base_delay_s=0.01, call_timeout_s=2, total_timeout_s=1)
    model = connect(provider, retry=policy)
    loopback.script(Fault.rate_limited(retry_after=5))
    with pytest.raises(ModelError, match="rate limited"):
        model.complete(ASK)
    assert len(loopback.requests) == 1  # waiting 5 s would pass the 1 s bound


@pytest.mark.parametrize(
    "fault, expected",
    [
        (Fault.error(400, "max_tokens: must be positive"), "refused the request"),
        (Fault.error(404, "model: claude-nope"), "check --model"),
    ],
)
def test_unfixable_failures_end_in_one_line_without_retrying(
    connect, loopback, store, provider, fault, expected
):
    model = connect(provider)
    loopback.script(fault, "never reached")
    with pytest.raises(ModelError, match=expected) as caught:
        model.complete(ASK)
    assert "\n" not in str(caught.value)
    assert len(loopback.requests) == 1
    assert calls(store)[0][2] != "ok"


def test_wrong_key_says_which_variable_to_set(connect, loopback, provider):
    model = connect(provider)
    loopback.valid_keys = {"the-right-key"}
    with pytest.raises(ModelError, match=f"set a valid {provider.upper()}_API_KEY"):
        model.complete(ASK)


def test_unknown_model_is_reported(connect, loopback, provider):
    loopback.known_models = {"the-only-model"}
    model = connect(provider, model="no-such-model")
    with pytest.raises(ModelError, match="no model 'no-such-model'"):
        model.complete(ASK)


def test_missing_key_is_a_clear_error(store):
    with pytest.raises(ModelError, match="ANTHROPIC_API_KEY is not set"):
        get_model("anthropic", store=store)
    with pytest.raises(ModelError, match="OPENAI_API_KEY is not set"):
        get_model("openai", store=store)


# the key never leaks


def test_key_appears_nowhere_but_the_request_header(
    connect, loopback, store, provider, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    key = ANTHROPIC_KEY if provider == "anthropic" else OPENAI_KEY
    model = connect(provider)
    loopback.script("fine", Fault.overloaded(), DRAFT_JSON)
    model.complete(ASK)
    model.structured(ASK, Draft)
    loopback.echo_key_in_errors = True  # a server careless enough to repeat the key
    loopback.valid_keys = {"another-key"}
    with pytest.raises(ModelError) as caught:
        model.complete(ASK)
    assert key not in str(caught.value) and key not in repr(caught.value)
    assert caught.value.__suppress_context__  # the SDK error, which holds the request, is dropped
    store.close()
    database = b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())
    assert key.encode() not in database
    output = capsys.readouterr()
    assert key not in output.out + output.err + caplog.text
    assert loopback.requests[0].api_key == key


def test_the_purpose_travels_as_a_header_and_stays_out_of_the_cache_key(
    connect, loopback, provider
):
    model = connect(provider)
    loopback.script("no JSON here", DRAFT_JSON, "free text")
    model.structured(ASK, Draft, temperature=0, purpose="review.judge")
    assert [r.purpose for r in loopback.requests] == ["review.judge"] * 2  # the repair too
    again = model.structured(ASK, Draft, temperature=0, purpose="another purpose")
    assert again.Name == "label_smoothing" and len(loopback.requests) == 2  # a cache hit
    model.complete(ASK)
    assert "x-ideagen-purpose" not in loopback.requests[-1].headers


# the response cache


def test_deterministic_calls_are_answered_from_the_cache(connect, loopback, store, provider):
    model = connect(provider)
    loopback.script("cached answer", DRAFT_JSON)
    first = model.complete(ASK, temperature=0, context=CONTEXT)
    again = model.complete(ASK, temperature=0, context=CONTEXT)
    assert again.text == first.text == "cached answer"
    draft = model.structured(ASK, Draft, temperature=0)
    assert model.structured(ASK, Draft, temperature=0) == draft
    assert len(loopback.requests) == 2 and store.spend().calls == 2


def test_cache_key_covers_the_whole_request(connect, loopback, provider):
    model = connect(provider)
    loopback.responder = lambda request: Reply(f"answer {len(loopback.requests)}")
    base = model.complete(ASK, temperature=0, context="A")
    variants = [
        model.complete(ASK, temperature=0, context="B"),
        model.complete(ASK, temperature=0, context="A", system="S"),
        model.complete(ASK, temperature=0, context="A", max_tokens=99),
        model.complete([Message(role="user", content="Other.")], temperature=0, context="A"),
    ]
    assert len({base.text, *(v.text for v in variants)}) == 5


def test_sampling_calls_and_no_cache_skip_the_cache(connect, loopback, provider):
    sampling = connect(provider)
    uncached = connect(provider, no_cache=True)
    loopback.responder = lambda request: Reply(f"answer {len(loopback.requests)}")
    assert sampling.complete(ASK).text != sampling.complete(ASK).text
    uncached.complete(ASK, temperature=0)
    uncached.complete(ASK, temperature=0)
    assert len(loopback.requests) == 4


# provider choice


def test_auto_prefers_anthropic_then_openai_and_says_why(loopback, store, monkeypatch):
    screen = io.StringIO()
    console = Console(file=screen, width=200)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    assert get_model(store=store, console=console).provider == "openai"
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    assert get_model(store=store, console=console).provider == "anthropic"
    text = screen.getvalue()
    assert "openai, because OPENAI_API_KEY is set" in text
    assert "anthropic, because ANTHROPIC_API_KEY is set" in text
    assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text


def test_unknown_provider_is_refused(store):
    with pytest.raises(ModelError, match="choose one of auto, anthropic, openai, local"):
        get_model("gemini", store=store)


def test_parallel_calls_share_one_model(connect, loopback, store, provider):
    model = connect(provider)
    loopback.responder = lambda request: Reply(request.last_user_text.upper())
    results: dict[int, str] = {}

    def ask(number: int) -> None:
        results[number] = model.complete([Message(role="user", content=f"n{number}")]).text

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: f"N{n}" for n in range(8)}
    assert store.spend().calls == 8


# prices and small parts


def test_user_price_file_overrides_the_table(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"my-model": {"input": 1, "output": 2}}))
    monkeypatch.setenv("IDEAGEN_PRICES", str(path))
    prices = load_prices()
    assert price_for("my-model-v2", prices).output == 2
    assert price_for("claude-sonnet-4-5-20250929", prices).input == 3.0
    assert price_for("claude-sonnet-5-5", prices).cache_read == pytest.approx(0.2)
    assert price_for("unknown-model", prices) is None
    path.write_text('{"my-model": {"input": "cheap"}}')
    with pytest.raises(ModelError, match="prices.json: entry 'my-model': input"):
        load_prices()


def test_price_file_in_the_home_folder_is_used(connect, loopback, store):
    (store.path.parent / "prices.json").write_text(
        json.dumps({"gpt-4o": {"input": 1000, "output": 0}})
    )
    model = connect("openai", model="gpt-4o")
    loopback.script("ok")
    usage = model.complete([Message(role="user", content="x" * 4000)]).usage
    assert usage.tokens_in == 1000 and usage.cost_usd == pytest.approx(1.0)


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "3"}) == 3
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_seconds({}) is None
