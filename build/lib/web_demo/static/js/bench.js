// Benchmark mode (`/?bench=1&bundle=F&precision=f32&prefill=64&decode=32&runs=3&warmup=1`): fixed prefill and
// decode lengths, warm-up runs, N measured runs; the result JSON goes to window.__benchResult, #bench-result
// and POST /api/bench-results. web_demo/automation.py drives it for the device lab.
import { countTokens, generate, loadModel } from './engine.js';
import { fitCheck } from './gpu.js';
import { choosePrecision } from './precision.js';

export const BENCH_SCHEMA = 'gemma-edge.web-bench/1';

export function benchParams(search) {
  const p = new URLSearchParams(search);
  if (p.get('bench') !== '1') return null;
  const int = (name, dflt) => { const v = parseInt(p.get(name) ?? '', 10); return Number.isFinite(v) ? v : dflt; };
  return {
    bundle: p.get('bundle') || '', precision: (p.get('precision') || 'auto').toLowerCase(),
    prefill: int('prefill', 64), decode: int('decode', 32), runs: int('runs', 3), warmup: int('warmup', 1),
    post: p.get('post') !== '0',
  };
}

// Digits tokenize one per token in Gemma's tokenizer (split_digits); spaced digits and words are fallbacks
// for tokenizers where that does not hold.
const FILLERS = [
  Array.from({ length: 16384 }, (_, i) => String(i % 10)).join(''),
  Array.from({ length: 8192 }, (_, i) => String(i % 10)).join(' '),
  'The quick brown fox jumps over the lazy dog. '.repeat(400),
];

/**
 * A prompt that sizeInTokens() counts as exactly `n` tokens (the engine adds BOS on top), starting at a
 * run-specific offset so no two runs share a prefix (the engine may reuse a cached prefix, which would fake
 * the prefill speed). Falls back to the closest length; the result reports the actual count.
 */
export function promptOfTokens(llm, n, run = 0) {
  let closest = null;
  for (const filler of FILLERS) {
    const text = filler.slice(run % 10);
    const size = (len) => countTokens(llm, text.slice(0, len));
    if (size(text.length) < n) continue;
    let lo = 0, hi = text.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (size(mid) >= n) hi = mid; else lo = mid + 1; }
    for (let len = Math.max(1, lo - 8); len < Math.min(text.length, lo + 32); len++) {
      if (size(len) === n) return text.slice(0, len);
    }
    closest ??= text.slice(0, lo);
  }
  if (closest === null) throw new Error(`cannot build a ${n}-token prompt (fillers too short)`);
  return closest;
}

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** Run the benchmark; always resolves to a result object (ok=false with `error` on failure). */
export async function runBenchmark(params, gpu, bundles, onStatus = () => {}) {
  const result = {
    schema: BENCH_SCHEMA, ok: false, error: null, started_utc: new Date().toISOString(), finished_utc: null,
    page_url: location.href, user_agent: navigator.userAgent,
    adapter: gpu, bundle: null, precision_requested: params.precision, precision_used: null, precision_note: null,
    force_f32: null, prefill_tokens_requested: params.prefill, decode_tokens_requested: params.decode,
    runs_requested: params.runs, warmup: params.warmup, max_tokens: null, load_ms: null, runs: [], summary: null,
  };
  let llm = null;
  try {
    if (!gpu || !gpu.supported) throw new Error(`No WebGPU: ${gpu ? gpu.reason : 'not detected'}`);
    const entry = bundles.find((b) => b.file === params.bundle);
    if (!entry) throw new Error(`bundle ${JSON.stringify(params.bundle)} is not in the manifest (have: ${bundles.map((b) => b.file).join(', ')})`);
    result.bundle = { file: entry.file, bytes: entry.bytes, sha256: entry.sha256, model: entry.model,
      quantization: entry.quantization, ekv: entry.ekv, format: entry.format, target: entry.target };
    const fit = fitCheck(entry, gpu);
    if (['too-large', 'not-for-web'].includes(fit.status)) throw new Error(`${entry.file}: ${fit.status}: ${fit.reason}`);
    const precision = choosePrecision(params.precision, gpu);
    if (!precision.ok) throw new Error(precision.error);
    Object.assign(result, { precision_used: precision.used, precision_note: precision.note, force_f32: precision.forceF32 });
    if (params.prefill < 2 || params.decode < 1 || params.runs < 1 || params.warmup < 0) {
      throw new Error('prefill must be >= 2, decode >= 1, runs >= 1, warmup >= 0');
    }
    // maxTokens bounds prompt + BOS + output, so generation stops after exactly `decode` tokens (or at EOS).
    const maxTokens = params.prefill + 1 + params.decode;
    if (maxTokens > entry.ekv) throw new Error(`prefill + decode + 1 = ${maxTokens} (BOS included) exceeds the bundle's KV cache (ekv ${entry.ekv})`);
    result.max_tokens = maxTokens;
    onStatus(`Loading ${entry.file} (${precision.used.toUpperCase()})…`);
    const loaded = await loadModel(entry, { maxTokens, topK: 1, temperature: 0, randomSeed: 0, forceF32: precision.forceF32 });
    llm = loaded.llm;
    result.load_ms = loaded.loadMs;
    for (let i = 0; i < params.warmup + params.runs; i++) {
      const warm = i < params.warmup;
      onStatus(`${warm ? 'Warm-up' : 'Run'} ${warm ? i + 1 : i - params.warmup + 1}…`);
      const prompt = promptOfTokens(llm, params.prefill, i);
      const g = await generate(llm, prompt);
      if (warm) continue;
      result.runs.push({
        prefill_tokens: g.tokensIn, decode_tokens: g.tokensOut, decode_tokens_retokenized: g.tokensOutRetokenized, ttft_ms: g.ttftMs, prefill_tok_s: g.prefillTokS,
        decode_ms: g.decodeMs, decode_tok_s: g.decodeTokS, total_ms: g.totalMs, updates: g.updates,
      });
    }
    const pick = (k) => result.runs.map((r) => r[k]);
    result.summary = {
      prefill_tokens: median(pick('prefill_tokens')), decode_tokens: median(pick('decode_tokens')),
      ttft_ms: median(pick('ttft_ms')), prefill_tok_s: median(pick('prefill_tok_s')),
      decode_tok_s: median(pick('decode_tok_s')), total_ms: median(pick('total_ms')), statistic: 'median',
    };
    result.ok = true;
  } catch (e) {
    result.error = (e && e.message) || String(e);
  } finally {
    if (llm) llm.close();
  }
  result.finished_utc = new Date().toISOString();
  return result;
}

export async function postResult(result) {
  const response = await fetch('/api/bench-results', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(result),
  });
  if (!response.ok) throw new Error(`POST /api/bench-results: HTTP ${response.status}`);
  return response.json();
}
