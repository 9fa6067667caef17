// ideagen's bridge to llama.cpp through node-llama-cpp: loads one GGUF model once and answers
// requests read as JSON lines on stdin with JSON lines on stdout, one request at a time.
//
//   node bridge.mjs --runtime DIR --model FILE [--threads N] [--context-size N]
//
// DIR is the folder holding node_modules/node-llama-cpp. Messages out:
//   {"event": "ready", "load_s", "context_size", "threads", "train_context_size"}
//   {"event": "progress", "id", "tokens_out"}           every few generated tokens
//   {"event": "done", "id", "text", "stop", "tokens_in", "tokens_evaluated", "tokens_out",
//    "prompt_s", "decode_s"}
//   {"event": "error", "id", "message"}
// Requests: {"id", "system", "messages": [{"role", "content"}], "schema", "temperature",
// "max_tokens", "seed"}; "schema" (a JSON schema, or null) constrains the reply by grammar.
// All requests run on one context sequence, which keeps the rendered system prompt between
// requests, so a request with the same system prompt as the previous one evaluates only the
// tokens after it (see settle). The bridge exits when stdin closes or its parent process goes
// away.

import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const PROGRESS_EVERY = 8; // tokens between progress messages

const { values: options } = parseArgs({
  options: {
    runtime: { type: "string" },
    model: { type: "string" },
    threads: { type: "string", default: "1" },
    "context-size": { type: "string", default: "8192" },
  },
});

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 2000).unref();

const entry = join(options.runtime, "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama, LlamaChat, LlamaLogLevel } = await import(pathToFileURL(entry).href);

const started = performance.now();
const threads = Number(options.threads);
let llama, model, context, chat;
try {
  llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: threads,
  });
  model = await llama.loadModel({ modelPath: options.model });
  context = await model.createContext({
    contextSize: Math.min(Number(options["context-size"]), model.trainContextSize),
    threads: { ideal: threads, min: threads },
    sequences: 1,
  });
  chat = new LlamaChat({ contextSequence: context.getSequence() });
} catch (error) {
  send({ event: "error", id: null, message: `could not load the model: ${error.message}` });
  process.exit(1);
}
send({
  event: "ready",
  load_s: (performance.now() - started) / 1000,
  context_size: context.contextSize,
  threads,
  train_context_size: model.trainContextSize,
});

function history(request) {
  const items = [];
  if (request.system) items.push({ type: "system", text: request.system });
  for (const message of request.messages) {
    if (message.role === "user") items.push({ type: "user", text: message.content });
    else items.push({ type: "model", response: [message.content] });
  }
  items.push({ type: "model", response: [] });
  return items;
}

function renderedTokens(items) {
  return chat.chatWrapper
    .generateContextState({ chatHistory: items })
    .contextText.tokenize(model.tokenizer);
}

// The tokens a system prompt renders to: the common start of two chats that differ only in
// their user message, whatever the chat template puts around them.
const systemPrefixes = new Map();
function systemPrefix(system) {
  if (!system) return [];
  if (!systemPrefixes.has(system)) {
    const [one, two] = ["a", "b"].map((text) =>
      renderedTokens([
        { type: "system", text: system },
        { type: "user", text },
        { type: "model", response: [] },
      ]),
    );
    let length = 0;
    while (length < one.length && length < two.length && one[length] === two[length]) length++;
    systemPrefixes.set(system, one.slice(0, length));
  }
  return systemPrefixes.get(system);
}

// Before each request the sequence holds exactly the request's system prompt, evaluated on its
// own, so that a reply depends on the request alone. Reusing whatever prefix the previous prompt
// shared made it depend on that prompt too: llama.cpp's numbers differ with where an evaluation
// starts, and at temperature 0 the local judge gave one idea Novelty 8 as a process's first
// request and 10 after another idea's.
async function settle(sequence, prefix) {
  const held = sequence.contextTokens;
  if (held.length >= prefix.length && prefix.every((token, i) => held[i] === token)) {
    if (held.length > prefix.length) {
      await sequence.eraseContextTokenRanges([{ start: prefix.length, end: held.length }]);
    }
    return;
  }
  await sequence.clearHistory();
  if (prefix.length) await sequence.evaluateWithoutGeneratingNewTokens(prefix);
}

async function answer(request) {
  const sequence = chat.sequence;
  const meterBefore = sequence.tokenMeter.getState();
  const grammar = request.schema ? await llama.createGrammarForJsonSchema(request.schema) : undefined;
  const begun = performance.now();
  await settle(sequence, systemPrefix(request.system));
  let firstTokenAt = null;
  let produced = 0;
  const result = await chat.generateResponse(history(request), {
    grammar,
    maxTokens: request.max_tokens,
    temperature: request.temperature,
    seed: request.seed ?? undefined,
    onToken(tokens) {
      if (firstTokenAt === null) firstTokenAt = performance.now();
      const before = produced;
      produced += tokens.length;
      if (Math.floor(produced / PROGRESS_EVERY) > Math.floor(before / PROGRESS_EVERY)) {
        send({ event: "progress", id: request.id, tokens_out: produced });
      }
    },
  });
  const finished = performance.now();
  const used = sequence.tokenMeter.constructor.diff(sequence.tokenMeter, meterBefore);
  const promptEnd = firstTokenAt ?? finished;
  send({
    event: "done",
    id: request.id,
    text: result.response,
    stop: result.metadata.stopReason,
    tokens_in: sequence.nextTokenIndex - produced,
    tokens_evaluated: used.usedInputTokens,
    tokens_out: used.usedOutputTokens,
    prompt_s: (promptEnd - begun) / 1000,
    decode_s: (finished - promptEnd) / 1000,
  });
}

// Requests are answered strictly in order: the context holds one conversation at a time.
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let request;
    try {
      request = JSON.parse(line);
      await answer(request);
    } catch (error) {
      send({ event: "error", id: request?.id ?? null, message: String(error?.message ?? error) });
    }
  });
});
// At the end of input the queued requests are answered first; a parent that has gone away is
// caught by the ppid check above and by the broken pipe below.
lines.on("close", () => queue.then(() => process.exit(0)));
process.stdout.on("error", () => process.exit(0));
