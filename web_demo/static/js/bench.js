// Benchmark mode (`/?bench=1&bundle=F&precision=f32&prefill=64&decode=32&runs=3&warmup=1[&runtime=auto]`): fixed
// prefill and decode lengths, warm-up runs, N measured runs, through the runtime for the bundle's format; the
// result JSON goes to window.__benchResult, #bench-result and POST /api/bench-results. web_demo/automation.py
// drives it for the device lab.
import { fitCheck } from './gpu.js';
import { choosePrecision } from './precision.js';
import { chooseRuntime } from './runtimes.js';

export const BENCH_SCHEMA = 'gemma-edge.web-bench/1';

export function benchParams(search) {
  const p = new URLSearchParams(search);
  if (p.get('bench') !== '1') return null;
  const int = (name, dflt) => { const v = parseInt(p.get(name) ?? '', 10); return Number.isFinite(v) ? v : dflt; };
  return {
    bundle: p.get('bundle') || '', precision: (p.get('precision') || 'auto').toLowerCase(),
    runtime: (p.get('runtime') || 'auto').toLowerCase(),
    prefill: int('prefill', 64), decode: int('decode', 32), runs: int('runs', 3), warmup: int('warmup', 1),
    post: p.get('post') !== '0',
  };
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
    adapter: gpu, bundle: null, runtime: null, runtime_requested: params.runtime,
    precision_requested: params.precision, precision_used: null, precision_note: null,
    force_f32: null, prefill_tokens_requested: params.prefill, decode_tokens_requested: params.decode,
    runs_requested: params.runs, warmup: params.warmup, max_tokens: null, load_ms: null, runs: [], summary: null,
  };
  let model = null;
  try {
    if (!gpu || !gpu.supported) throw new Error(`No WebGPU: ${gpu ? gpu.reason : 'not detected'}`);
    const entry = bundles.find((b) => b.file === params.bundle);
    if (!entry) throw new Error(`bundle ${JSON.stringify(params.bundle)} is not in the manifest (have: ${bundles.map((b) => b.file).join(', ')})`);
    result.bundle = { file: entry.file, bytes: entry.bytes, sha256: entry.sha256, model: entry.model,
      quantization: entry.quantization, ekv: entry.ekv, format: entry.format, target: entry.target };
    const chosen = chooseRuntime(entry, params.runtime);
    if (!chosen.ok) throw new Error(chosen.error);
    const runtime = chosen.runtime;
    result.runtime = { id: runtime.id, label: runtime.label, npm: runtime.npm };
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
    onStatus(`Loading ${entry.file} in ${runtime.label} (${precision.used.toUpperCase()})…`);
    model = await runtime.load(entry, { maxTokens, topK: 1, temperature: 0, randomSeed: 0, forceF32: precision.forceF32 });
    result.load_ms = model.loadMs;
    for (let i = 0; i < params.warmup + params.runs; i++) {
      const warm = i < params.warmup;
      onStatus(`${warm ? 'Warm-up' : 'Run'} ${warm ? i + 1 : i - params.warmup + 1}…`);
      const prompt = await model.promptOfTokens(params.prefill, i);
      const g = await model.generate(prompt, { maxOutputTokens: params.decode });
      if (warm) continue;
      result.runs.push({
        prefill_tokens: g.tokensIn, decode_tokens: g.tokensOut, decode_tokens_retokenized: g.tokensOutRetokenized, ttft_ms: g.ttftMs, prefill_tok_s: g.prefillTokS,
        decode_ms: g.decodeMs, decode_tok_s: g.decodeTokS, total_ms: g.totalMs, updates: g.updates, prompt, text: g.text,
        engine: g.engine || null,
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
    if (model) await model.close();
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
