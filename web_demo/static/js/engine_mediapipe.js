// The MediaPipe runtime (@mediapipe/tasks-genai, LlmInference) for .task bundles: load timing, and a
// generate() that measures TTFT / prefill / decode speed and counts tokens with sizeInTokens().
import { DownloadError, EngineError, errorText, openBundle } from './download.js';
import { promptOfTokens } from './fillers.js';
import { finishStats } from './stats.js';

const MODULE_URL = '/vendor/tasks-genai/genai_bundle.mjs';
const WASM_BASE = '/vendor/tasks-genai/wasm';
let genaiPromise = null;
let filesetPromise = null;

async function genai() {
  genaiPromise ??= import(MODULE_URL);
  const module = await genaiPromise;
  filesetPromise ??= module.FilesetResolver.forGenAiTasks(new URL(WASM_BASE, location.href).href);
  return { LlmInference: module.LlmInference, fileset: await filesetPromise };
}

/**
 * Tokens in `text` as the engine tokenizes it (sizeInTokens). The BOS token the engine prepends to every
 * query is not included (sizeInTokens('') is 0), but it does count against maxTokens.
 */
function countTokens(llm, text) {
  const n = llm.sizeInTokens(text);
  if (n === undefined) throw new EngineError('sizeInTokens() failed (see the console)');
  return n;
}

/**
 * One generation. onPartial(deltaText, fullText) is called for each streamed piece. Aborting `signal` stops
 * the answer: it calls cancelProcessing() and freezes the text at that point. MediaPipe 0.10.29 ignores
 * cancelProcessing() for .task bundles on WebGPU (it sets a flag the engine never reads), so the engine may
 * keep decoding in the background; this still resolves only once the engine is idle again (it accepts one
 * query at a time and sizeInTokens() is refused while busy). `engineKeptRunning` says which case happened.
 * `lora` (a LoraModel from loadLora, or null) answers with that adapter.
 */
async function generate(llm, prompt, { onPartial = () => {}, signal = null, lora = null } = {}) {
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
  const tokensOutRetokenized = text ? countTokens(llm, text) : 0;
  return finishStats({ text, tokensIn, tokensOut: steps, tokensOutRetokenized, updates, started, firstAt, ended,
    cancelled: stoppedAt !== null, engineKeptRunning: stoppedAt !== null && engineText.length > text.length });
}

export const runtime = {
  id: 'mediapipe',
  label: 'MediaPipe LLM Inference',
  npm: '@mediapipe/tasks-genai',
  formats: ['task'],
  // The page formats chat prompts itself (formatPrompt); MediaPipe runs the text as given, after a BOS.
  appliesTemplate: false,
  cancelStopsEngine: false,

  /**
   * Download `entry` (streamed into the engine) and create the LlmInference.
   * options: {maxTokens, topK, temperature, randomSeed, forceF32, loraRanks}. onProgress(loadedBytes, totalBytes).
   */
  async load(entry, options, onProgress = () => {}) {
    const started = performance.now();
    const { LlmInference, fileset } = await genai();
    const bundle = await openBundle(entry, runtime, onProgress);
    let llm;
    try {
      llm = await LlmInference.createFromOptions(fileset, {
        baseOptions: { modelAssetBuffer: bundle.stream.getReader() },
        maxTokens: options.maxTokens, topK: options.topK, temperature: options.temperature,
        randomSeed: options.randomSeed, forceF32: Boolean(options.forceF32),
        ...(options.loraRanks ? { loraRanks: options.loraRanks } : {}),
      });
    } catch (e) {
      if (bundle.loaded() < bundle.total) {
        throw new DownloadError(`Download of ${entry.file} stopped at ${bundle.loaded()} of ${bundle.total} bytes: ${errorText(e)}`);
      }
      throw new EngineError(`The engine could not load ${entry.file}: ${errorText(e)}`);
    }
    if (bundle.loaded() < bundle.total) {
      llm.close();
      throw new DownloadError(`Download of ${entry.file} ended early: ${bundle.loaded()} of ${bundle.total} bytes`);
    }
    return {
      runtime, llm, loadMs: performance.now() - started, downloadedBytes: bundle.loaded(),
      countTokens: (text) => countTokens(llm, text),
      generate: (prompt, opts) => generate(llm, prompt, opts),
      promptOfTokens: async (n, run) => promptOfTokens((text) => countTokens(llm, text), n, run),
      loadLora: (url) => llm.loadLoraModel(url),
      close: () => llm.close(),
    };
  },
};
