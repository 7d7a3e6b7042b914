// Thin wrapper over MediaPipe's LlmInference: streamed download with progress, load timing, and a
// generate() that measures TTFT / prefill / decode speed and counts tokens with sizeInTokens().
import { FilesetResolver, LlmInference } from '/vendor/tasks-genai/genai_bundle.mjs';

const WASM_BASE = '/vendor/tasks-genai/wasm';
let filesetPromise = null;

export class DownloadError extends Error {}
export class EngineError extends Error {}

function fileset() {
  filesetPromise ??= FilesetResolver.forGenAiTasks(new URL(WASM_BASE, location.href).href);
  return filesetPromise;
}

function errorText(e) {
  if (Array.isArray(e)) return e.map(errorText).join('; ');
  return (e && (e.message || String(e))) || 'unknown error';
}

/**
 * Download `entry` (streamed into the engine, never held whole in JS) and create the LlmInference.
 * options: {maxTokens, topK, temperature, randomSeed, forceF32, loraRanks}. onProgress(loadedBytes, totalBytes).
 * Returns {llm, loadMs, downloadedBytes}.
 */
export async function loadModel(entry, options, onProgress = () => {}) {
  const started = performance.now();
  const fs = await fileset();
  let response;
  try {
    response = await fetch(entry.path || entry.url);
  } catch (e) {
    throw new DownloadError(`Download of ${entry.file} failed: ${errorText(e)}`);
  }
  if (!response.ok) {
    let detail = '';
    try { detail = (await response.json()).error || ''; } catch { /* not JSON */ }
    throw new DownloadError(`Download of ${entry.file} failed: HTTP ${response.status}${detail ? ` (${detail})` : ''}`);
  }
  const total = Number(response.headers.get('Content-Length')) || entry.bytes;
  let loaded = 0;
  const counter = new TransformStream({
    transform(chunk, controller) { loaded += chunk.byteLength; onProgress(loaded, total); controller.enqueue(chunk); },
  });
  const reader = response.body.pipeThrough(counter).getReader();
  let llm;
  try {
    llm = await LlmInference.createFromOptions(fs, {
      baseOptions: { modelAssetBuffer: reader },
      maxTokens: options.maxTokens, topK: options.topK, temperature: options.temperature,
      randomSeed: options.randomSeed, forceF32: Boolean(options.forceF32),
      ...(options.loraRanks ? { loraRanks: options.loraRanks } : {}),
    });
  } catch (e) {
    if (loaded < total) throw new DownloadError(`Download of ${entry.file} stopped at ${loaded} of ${total} bytes: ${errorText(e)}`);
    throw new EngineError(`The engine could not load ${entry.file}: ${errorText(e)}`);
  }
  if (loaded < total) {
    llm.close();
    throw new DownloadError(`Download of ${entry.file} ended early: ${loaded} of ${total} bytes`);
  }
  return { llm, loadMs: performance.now() - started, downloadedBytes: loaded };
}

/**
 * Tokens in `text` as the engine tokenizes it (sizeInTokens). The BOS token the engine prepends to every
 * query is not included (sizeInTokens('') is 0), but it does count against maxTokens.
 */
export function countTokens(llm, text) {
  const n = llm.sizeInTokens(text);
  if (n === undefined) throw new EngineError('sizeInTokens() failed (see the console)');
  return n;
}

/**
 * Run one generation. onPartial(deltaText, fullText) is called for each streamed piece. Aborting `signal`
 * stops the answer: it calls cancelProcessing() and freezes the text at that point. MediaPipe 0.10.29 ignores
 * cancelProcessing() for .task bundles on WebGPU (it sets a flag the engine never reads), so the engine may
 * keep decoding in the background; this still resolves only once the engine is idle again (it accepts one
 * query at a time and sizeInTokens() is refused while busy). `engineKeptRunning` says which case happened.
 * `lora` (a LoraModel from loadLoraModel, or null) answers with that adapter.
 * Returns {text, cancelled, engineKeptRunning, tokensIn, tokensOut, tokensOutRetokenized, ttftMs, prefillTokS, decodeMs,
 * decodeTokS, totalMs, updates}; speeds cover the shown tokens only.
 */
export async function generate(llm, prompt, onPartial = () => {}, signal = null, lora = null) {
  const tokensIn = countTokens(llm, prompt);
  let text = '';
  let engineText = '';
  let updates = 0;
  let steps = 0;
  let firstAt = null;
  let stoppedAt = null;
  const onAbort = () => { stoppedAt ??= performance.now(); llm.cancelProcessing(); };
  if (signal) {
    if (signal.aborted) throw new EngineError('Generation was cancelled before it started');
    signal.addEventListener('abort', onAbort, { once: true });
  }
  const started = performance.now();
  try {
    const listener = (partial, done) => {
      // One callback per decoded token; a token can decode to '' (e.g. half a UTF-8 character), while a
      // final done=true callback with '' carries no token.
      if (!partial && done) return;
      engineText += partial || '';
      if (stoppedAt !== null) return;
      if (firstAt === null) firstAt = performance.now();
      steps++;
      if (!partial) return;
      updates++;
      text += partial;
      onPartial(partial, text);
    };
    const result = await (lora ? llm.generateResponse(prompt, lora, listener) : llm.generateResponse(prompt, listener));
    if (stoppedAt === null && typeof result === 'string' && result.length > text.length) text = result;
  } catch (e) {
    throw new EngineError(`Generation failed: ${errorText(e)}`);
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
  }
  const ended = stoppedAt ?? performance.now();
  // Tokens streamed by the engine; re-tokenizing the text (sizeInTokens) can differ by a token or two
  // because generated pieces may merge differently, so both are reported.
  const tokensOut = steps;
  const tokensOutRetokenized = text ? countTokens(llm, text) : 0;
  const ttftMs = firstAt === null ? null : firstAt - started;
  const decodeMs = firstAt === null ? null : ended - firstAt;
  return {
    text, cancelled: stoppedAt !== null, engineKeptRunning: stoppedAt !== null && engineText.length > text.length,
    tokensIn, tokensOut, tokensOutRetokenized, updates, ttftMs, decodeMs, totalMs: ended - started,
    prefillTokS: ttftMs ? tokensIn / (ttftMs / 1000) : null,
    decodeTokS: decodeMs && tokensOut > 1 ? (tokensOut - 1) / (decodeMs / 1000) : null,
  };
}
