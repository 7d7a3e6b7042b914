// The LiteRT-LM runtime (@litert-lm/core, LiteRT-LM's own JavaScript + wasm build) for .litertlm bundles.
//
// What 0.17.1 accepts (docs/web_demo.md, "LiteRT-LM in the browser"): its default backend, GPU_ARTISAN, streams
// only files with a TF_LITE_ARTISAN_TEXT_DECODER section (Google's internal GPU converter); for the
// TF_LITE_PREFILL_DECODE section litert-torch writes it says "Streaming kTfLitePrefillDecode models is not
// supported yet". Backend.GPU (LiteRT's compiled model on its WebGPU accelerator) loads that section once the
// whole file is in wasm memory, but only with `convert_weights_on_gpu: false`: with the default (true) engine
// creation dies inside ml_drift's gpu_backend_webgpu.cc ("RuntimeError: null function" for int8 weights, an
// abort for float ones). So this runtime uses Backend.GPU with that one setting changed.
import { DownloadError, EngineError, errorText, openBundle } from './download.js';
import { digits } from './fillers.js';
import { finishStats } from './stats.js';

const CORE_URL = '/vendor/litert-lm/dist/index.js';
const WASM_BASE = '/vendor/litert-lm/wasm/';

// LiteRT-LM's AdvancedSettings defaults (runtime/executor/llm_executor_settings.h); the binding takes the whole
// struct or nothing. Only convert_weights_on_gpu differs, see above.
export const ADVANCED_SETTINGS = Object.freeze({
  prefill_batch_sizes: [], num_output_candidates: 1, configure_magic_numbers: true, verify_magic_numbers: false,
  clear_kv_cache_before_prefill: true, num_logits_to_print_after_decode: 0, gpu_madvise_original_shared_tensors: true,
  is_benchmark: false, preferred_device_substr: '', num_threads_to_upload: -1, num_threads_to_compile: -1,
  convert_weights_on_gpu: false, optimize_shader_compilation: true, share_constant_tensors: true,
});

// SamplerType.TOP_K in @litert-lm/core (wasm_binding_types.js). Its GREEDY (3) blocks the page for good in 0.17.1
// (the first decode step never returns), so greedy decoding is TOP_K with k = 1.
const TOP_K = 1;

let corePromise = null;
let wasmMode = null;  // 'f16' | 'f32': the WebGPU device the loaded wasm module was given

/** A WebGPU device like @litert-lm/core's own default, with shader-f16 only when F16 is wanted. */
async function createDevice(f16) {
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new EngineError('No WebGPU adapter for LiteRT-LM');
  const names = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage', 'maxTextureDimension2D'];
  const requiredLimits = Object.fromEntries(names.map((n) => [n, adapter.limits[n]]));
  const requiredFeatures = ['subgroups', ...(f16 ? ['shader-f16'] : [])].filter((f) => adapter.features.has(f));
  return adapter.requestDevice({ requiredFeatures, requiredLimits });
}

/**
 * The @litert-lm/core module with its wasm loaded from this server (never its CDN default) and given a device
 * for the precision wanted. The wasm caches the device on first use (emscripten_webgpu_get_device), so a
 * different precision, or a module left dead by an engine abort, means loading the wasm afresh.
 */
async function core(f16) {
  corePromise ??= import(CORE_URL);
  const lib = await corePromise;
  const mode = f16 ? 'f16' : 'f32';
  if (wasmMode !== mode) {
    if (wasmMode !== null) lib.unloadLiteRtLm();
    wasmMode = null;
    const instance = await lib.loadLiteRtLm(WASM_BASE);
    instance.liteRtLmWasm.preinitializedWebGPUDevice = await createDevice(f16);
    wasmMode = mode;
  }
  return lib;
}

const partText = (message) => (Array.isArray(message && message.content) ? message.content : [])
  .filter((p) => p.type === 'text').map((p) => p.text).join('');

function samplerFor(options) {
  const greedy = options.topK <= 1 || options.temperature <= 0;
  return greedy ? { type: TOP_K, k: 1, temperature: 1, seed: options.randomSeed }
    : { type: TOP_K, k: options.topK, temperature: options.temperature, seed: options.randomSeed };
}

/**
 * One answer in a fresh Conversation (the engine applies the bundle's prompt template itself; earlier turns go
 * in as the preface). Stop cancels the stream, which cancels the engine's decode loop. Token counts and the
 * engine's own timings come from getBenchmarkInfo(); tokensIn excludes the BOS, as sizeInTokens() does.
 */
async function generate(engine, limits, prompt, { onPartial = () => {}, signal = null, history = [], maxOutputTokens } = {}) {
  if (signal && signal.aborted) throw new EngineError('Generation was cancelled before it started');
  const preface = history.length
    ? { messages: history.map((t) => ({ role: t.role === 'model' ? 'model' : 'user', content: t.text })) } : undefined;
  let conversation;
  try {
    conversation = await engine.createConversation({
      sessionConfig: { samplerParams: limits.sampler, ...(maxOutputTokens ? { maxOutputTokens } : {}) },
      ...(preface ? { preface } : {}),
    });
  } catch (e) {
    throw new EngineError(`Generation failed: ${errorText(e)}`);
  }
  let text = '';
  let updates = 0;
  let steps = 0;
  let firstAt = null;
  let stoppedAt = null;
  const started = performance.now();
  let reader = null;
  const onAbort = () => { stoppedAt ??= performance.now(); if (reader) reader.cancel().catch(() => {}); };
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  try {
    reader = conversation.sendMessageStreaming(prompt).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done || stoppedAt !== null) break;
      if (firstAt === null) firstAt = performance.now();
      steps++;
      const piece = partText(value);
      if (!piece) continue;
      updates++;
      text += piece;
      onPartial(piece, text);
    }
  } catch (e) {
    if (stoppedAt === null) throw new EngineError(`Generation failed: ${errorText(e)}`);
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
  }
  const ended = stoppedAt ?? performance.now();
  // Waits for the engine to be idle (the conversation shares the engine's lock with the decode loop).
  const info = await conversation.getBenchmarkInfo().catch(() => null);
  await conversation.delete().catch(() => {});
  // Tokens decoded that detokenize to nothing at all (invalid logits): seen with the real 270M on SwiftShader
  // through Backend.GPU when the file leaves the decoder's activations to the backend's float16 default, while
  // the same file answers on the CPU. An empty answer would read as a model that said nothing, so say so.
  if (!text && stoppedAt === null && info && info.lastDecodeTokenCount > 1) {
    throw new EngineError(`LiteRT-LM decoded ${info.lastDecodeTokenCount} tokens that carry no text: its WebGPU ` +
      'backend gave invalid output for this bundle on this adapter (a .litertlm built for --target web-gpu asks ' +
      'for float32 activations; others get the GPU backend\'s float16 default)');
  }
  const engineStats = info && {
    prefill_tokens: info.lastPrefillTokenCount, prefill_tok_s: info.lastPrefillTokensPerSecond,
    decode_tokens: info.lastDecodeTokenCount, decode_tok_s: info.lastDecodeTokensPerSecond,
    ttft_s: info.timeToFirstTokenInSecond,
  };
  // A stream chunk can carry several tokens (byte tokens are held back until they form a character), so the
  // engine's decode count is the token count; after Stop it counts the token or two decoded past it, so not then.
  const tokensOut = info && stoppedAt === null ? info.lastDecodeTokenCount : steps;
  return finishStats({
    text, tokensIn: info ? info.lastPrefillTokenCount - 1 : null, tokensOut, tokensOutRetokenized: null,
    updates, started, firstAt, ended, cancelled: stoppedAt !== null,
    // Cancel is honoured a token or two after Stop; had it been ignored, the engine would have decoded to maxTokens.
    engineKeptRunning: Boolean(stoppedAt !== null && info &&
      info.lastPrefillTokenCount + info.lastDecodeTokenCount >= limits.maxTokens),
    engine: engineStats,
  });
}

export const runtime = {
  id: 'litert-lm',
  label: 'LiteRT-LM',
  npm: '@litert-lm/core',
  formats: ['litertlm'],
  // The engine formats chat turns with the bundle's own prompt template (LlmMetadata in the .litertlm).
  appliesTemplate: true,
  cancelStopsEngine: true,

  /**
   * Download `entry` into the wasm engine (Backend.GPU reads the whole file into wasm memory before it builds the
   * GPU graph) and create the Engine. options as for MediaPipe; forceF32 gives the engine a device without
   * shader-f16. loraRanks is ignored: this runtime has no way to load an adapter.
   */
  async load(entry, options, onProgress = () => {}) {
    const started = performance.now();
    let lib;
    try {
      lib = await core(!options.forceF32);
    } catch (e) {
      wasmMode = null;
      throw new EngineError(`LiteRT-LM's wasm runtime could not start: ${errorText(e)}`);
    }
    const bundle = await openBundle(entry, runtime, onProgress);
    let engine;
    try {
      engine = await lib.Engine.create({
        model: bundle.stream, backend: lib.Backend.GPU, benchmarkEnabled: true,
        mainExecutorSettings: { maxNumTokens: options.maxTokens, advancedSettings: { ...ADVANCED_SETTINGS } },
      });
    } catch (e) {
      wasmMode = null;  // an abort() inside the engine leaves the wasm module unusable
      if (bundle.loaded() < bundle.total) {
        throw new DownloadError(`Download of ${entry.file} stopped at ${bundle.loaded()} of ${bundle.total} bytes: ${errorText(e)}`);
      }
      throw new EngineError(`The engine could not load ${entry.file}: ${errorText(e)}`);
    }
    const limits = { sampler: samplerFor(options), maxTokens: options.maxTokens };
    let templateTokens = null;
    const model = {
      runtime, engine, loadMs: performance.now() - started, downloadedBytes: bundle.loaded(),
      countTokens: null,
      generate: (prompt, opts) => generate(engine, limits, prompt, opts),
      /**
       * @litert-lm/core has no tokenizer call, so the engine is asked once how many tokens a one-digit message
       * becomes (BOS + the bundle's template + 1); digits are one token each in Gemma's tokenizer. The prompt
       * then makes the engine prefill n + 1 tokens, as MediaPipe does for an n-token prompt after its BOS.
       */
      async promptOfTokens(n, run) {
        if (templateTokens === null) {
          const probe = await model.generate('0', { maxOutputTokens: 1 });
          templateTokens = probe.tokensIn - 1;  // what the engine added around the digit, BOS excluded
        }
        const length = n - templateTokens;
        if (length < 1) throw new EngineError(`a ${n}-token prompt is shorter than the bundle's prompt template (${templateTokens} tokens)`);
        return digits(length, run);
      },
      loadLora: async () => {
        throw new EngineError(`${runtime.npm} 0.17.1 has no call to load a LoRA adapter (its Engine, Session and ` +
          'Conversation take none; only the GPU_ARTISAN backend reserves LoRA ranks)');
      },
      close: () => engine.delete(),
    };
    return model;
  },
};
