// Page wiring: adapter panel, bundle picker, runtime choice, load, chat with streaming/stop, stats, benchmark mode.
// Page state is mirrored on document.body.dataset.state ('init'|'idle'|'loading'|'ready'|'generating'|'error')
// and window.__demo, so people, screen readers (aria-live regions) and automation see the same thing.
import { benchParams, postResult, runBenchmark } from './bench.js';
import { detectGpu, fitCheck, fmtBytes } from './gpu.js';
import { choosePrecision } from './precision.js';
import { activeLora, loadLora, loraRanksFor, loraState, renderLora, resetLora } from './lora.js';
import { formatPrompt, templateFor } from './prompt.js';
import { chooseRuntime } from './runtimes.js';

const $ = (id) => document.getElementById(id);
const state = { gpu: null, bundles: [], model: null, loadedKey: null, loadMs: null, precision: null, runtime: null,
  history: [], historyTokens: 0, stats: null };
state.lora = loraState;
window.__demo = state;

// A fatal problem found before this script ran (runtime-check.js: the runtime is not installed) keeps the page in
// its error state whatever this script's own start-up does.
function setState(s) { document.body.dataset.state = document.body.dataset.fatal ? 'error' : s; }

function showError(message) {
  const el = $('error');
  el.textContent = message;
  el.hidden = !message;
  if (message) setState('error');
}

function renderGpu(gpu) {
  const dl = $('gpu-info');
  dl.replaceChildren();
  if (!gpu.supported) {
    $('gpu-status').textContent = 'WebGPU unavailable.';
    showError(`No WebGPU: ${gpu.reason}`);
    return;
  }
  $('gpu-status').textContent = `WebGPU available${gpu.isFallbackAdapter ? ' (software fallback adapter)' : ''}.`;
  const rows = [
    ['Vendor', gpu.vendor || '(not reported)'], ['Architecture', gpu.architecture || '(not reported)'],
    ['Device', gpu.device || gpu.description || '(not reported)'],
    ['shader-f16', gpu.shaderF16 ? 'yes' : 'no'],
    ...Object.entries(gpu.limits).map(([k, v]) => [k, `${v.toLocaleString('en')}${k.endsWith('Size') ? ` (${fmtBytes(v)})` : ''}`]),
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v; dd.dataset.gpu = k;
    dl.append(dt, dd);
  }
}

const selectedEntry = () => state.bundles.find((b) => b.file === $('bundle').value) || null;
const selectedPrecision = () => document.querySelector('input[name=precision]:checked').value;
const selectedRuntime = () => document.querySelector('input[name=runtime]:checked').value;

function renderBundles() {
  const sel = $('bundle');
  sel.replaceChildren();
  for (const b of state.bundles) {
    const fit = fitCheck(b, state.gpu);
    const opt = document.createElement('option');
    opt.value = b.file;
    opt.textContent = `${b.file} — ${fmtBytes(b.bytes)} — ${fit.status === 'fits' ? 'fits' : fit.status.replace(/-/g, ' ')}`;
    sel.append(opt);
  }
  // Default to the first .task: MediaPipe's runtime is the proven one (@litert-lm/core is an early preview).
  const firstTask = state.bundles.find((b) => b.format === 'task');
  if (firstTask) sel.value = firstTask.file;
  if (!state.bundles.length) {
    $('bundle-info').textContent = 'No bundles in the manifest. Build some with sdk_build, then reload.';
    $('load').disabled = true;
  }
}

function renderBundleInfo() {
  const b = selectedEntry();
  if (!b) return;
  const fit = fitCheck(b, state.gpu);
  const info = $('bundle-info');
  info.textContent = `${b.model}, ${b.quantization}, ${fmtBytes(b.bytes)}, KV cache ${b.ekv} tokens, ` +
    `${b.instruction_tuned ? 'instruction-tuned (chat template)' : 'pretrained (raw text continuation)'}; ${fit.status}: ${fit.reason}.`;
  info.className = `hint${fit.status === 'fits' ? '' : fit.status === 'may-not-fit' ? ' warn' : ' bad'}`;
  info.dataset.fit = fit.status;
  $('maxTokens').value = b.ekv;
  $('maxTokens').max = b.ekv;
  $('template-note').textContent = templateFor(b) ? 'Gemma chat template applied.' : 'Raw text: the model continues your text.';
  renderLora(b);
  renderRuntimeNote();
}

function renderRuntimeNote() {
  const b = selectedEntry();
  if (!b) return;
  const r = chooseRuntime(b, selectedRuntime());
  const note = $('runtime-note');
  note.textContent = r.ok ? r.note : r.error;
  note.className = `hint${r.ok ? '' : ' bad'}`;
}

function renderPrecisionNote() {
  const p = choosePrecision(selectedPrecision(), state.gpu);
  const note = $('precision-note');
  note.textContent = p.ok ? p.note : p.error;
  note.className = `hint${p.ok ? '' : ' bad'}`;
}

function settings() {
  const b = selectedEntry();
  const num = (id, dflt) => { const v = Number($(id).value); return Number.isFinite(v) && $(id).value !== '' ? v : dflt; };
  return {
    maxTokens: Math.min(num('maxTokens', b.ekv), b.ekv), topK: num('topK', 40), temperature: num('temperature', 0.8),
    randomSeed: num('seed', 0), precision: selectedPrecision(), runtime: selectedRuntime(),
  };
}

function setStat(name, text, value) {
  const dd = document.querySelector(`[data-stat="${name}"]`);
  dd.textContent = text;
  if (value !== undefined) dd.dataset.value = String(value);
}

// Fixed decimals, but never round a small positive rate to "0.0" (SwiftShader prefill can be 0.02 tok/s).
const fmt = (x, unit, digits = 1) => {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const text = x > 0 && x < 10 ** -digits * 10 ? x.toPrecision(2) : x.toFixed(digits);
  return `${text} ${unit}`;
};

async function load() {
  showError('');
  const entry = selectedEntry();
  if (!entry) return false;
  const s = settings();
  const chosen = chooseRuntime(entry, s.runtime);
  if (!chosen.ok) { showError(chosen.error); renderRuntimeNote(); return false; }
  const precision = choosePrecision(s.precision, state.gpu);
  if (!precision.ok) { showError(precision.error); renderPrecisionNote(); return false; }
  const fit = fitCheck(entry, state.gpu);
  if (['too-large', 'not-for-web'].includes(fit.status) && new URLSearchParams(location.search).get('force') !== '1') {
    const what = fit.status === 'too-large' ? 'Model too large for this adapter' : 'Not a browser bundle';
    showError(`${what}: ${fit.reason}. (Add ?force=1 to the URL to try anyway.)`);
    return false;
  }
  if (state.model) { const old = state.model; state.model = null; state.loadedKey = null; await old.close(); }
  setState('loading');
  for (const id of ['load', 'send', 'prompt']) $(id).disabled = true;
  const bar = $('download');
  bar.hidden = false; bar.value = 0;
  $('load-status').textContent = `Downloading ${entry.file}…`;
  try {
    resetLora();
    const runtime = chosen.runtime;
    $('load-status').textContent = `Downloading ${entry.file} for ${runtime.label}…`;
    const model = await runtime.load(entry, { ...s, forceF32: precision.forceF32, loraRanks: loraRanksFor(entry) }, (loaded, total) => {
      bar.max = total; bar.value = loaded;
      $('load-status').textContent = loaded < total ? `Downloading ${fmtBytes(loaded)} of ${fmtBytes(total)}…` : `Initialising ${runtime.label}…`;
    });
    Object.assign(state, { model, runtime, loadMs: model.loadMs, precision, loadedKey: JSON.stringify({ f: entry.file, ...s }),
      history: [], historyTokens: 0 });
    $('load-status').textContent = `Loaded ${entry.file} in ${(model.loadMs / 1000).toFixed(1)} s (${runtime.label}, ${precision.used.toUpperCase()}).`;
    setStat('load_ms', fmt(model.loadMs, 'ms', 0), model.loadMs);
    setStat('runtime', runtime.label, runtime.id);
    setStat('precision_used', `${precision.used.toUpperCase()} — ${precision.note}`, precision.used);
    setState('ready');
    return true;
  } catch (e) {
    showError(`${e.message || e}`);
    $('load-status').textContent = 'Load failed.';
    return false;
  } finally {
    bar.hidden = true;
    $('load').disabled = false;
    $('send').disabled = $('prompt').disabled = false;
  }
}

// Load the chosen LoRA adapter into the engine (loading the selected bundle first when needed).
async function loadSelectedLora() {
  const entry = selectedEntry();
  if (!entry || ['generating', 'loading'].includes(document.body.dataset.state)) return;
  if (!state.model || state.loadedKey !== JSON.stringify({ f: entry.file, ...settings() })) {
    if (!(await load())) return;
  }
  $('lora-load').disabled = true;
  try { await loadLora(state.model, entry); } finally { $('lora-load').disabled = false; }
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  div.textContent = text;
  $('transcript').append(div);
  return div;
}

async function send(message) {
  const entry = selectedEntry();
  if (!message.trim() || !entry) return;
  if (['generating', 'loading', 'benchmarking'].includes(document.body.dataset.state)) return;  // one at a time
  if (!state.model || state.loadedKey !== JSON.stringify({ f: entry.file, ...settings() })) {
    if (!(await load())) return;
  }
  showError('');
  const s = settings();
  const model = state.model;
  // Keep earlier turns (instruction-tuned only) while they fit in half of maxTokens. MediaPipe gets the page's
  // formatted prompt (counted with sizeInTokens); LiteRT-LM formats turns itself and counts nothing ahead, so its
  // history is kept while the last answer's whole conversation (as the engine counted it) stayed within half.
  let history = templateFor(entry) ? [...state.history] : [];
  let prompt;
  if (model.runtime.appliesTemplate) {
    if (state.historyTokens > s.maxTokens / 2) history = history.length > 2 ? history.slice(-2) : [];
    prompt = message;
  } else {
    prompt = formatPrompt(entry, message, history);
    while (history.length && model.countTokens(prompt) > s.maxTokens / 2) {
      history = history.slice(2);
      prompt = formatPrompt(entry, message, history);
    }
    const inTokens = model.countTokens(prompt);
    if (inTokens >= s.maxTokens) {
      showError(`The prompt is ${inTokens} tokens, which leaves no room under maxTokens (${s.maxTokens}). Shorten it.`);
      return;
    }
  }
  addMessage('user', message);
  const out = addMessage('model', '');
  out.setAttribute('aria-busy', 'true');
  state.abort = new AbortController();
  setState('generating');
  $('send').disabled = true; $('stop').disabled = false; $('load').disabled = true;
  state.partialUpdates = 0;
  try {
    const lora = activeLora(entry);
    const g = await model.generate(prompt, { onPartial: (delta, full) => { state.partialUpdates++; out.textContent = full; },
      signal: state.abort.signal, lora, history: model.runtime.appliesTemplate ? history : [] });
    out.textContent = g.text + (g.cancelled ? ' [stopped]' : '');
    if (g.cancelled) {
      $('load-status').textContent = g.engineKeptRunning
        ? `Stopped. (${model.runtime.label} ignores cancel for these bundles, so the engine finished the answer in the background; its rest was discarded.)`
        : 'Stopped.';
    }
    if (templateFor(entry) && !g.cancelled) {
      state.history = [...history, { role: 'user', text: message }, { role: 'model', text: g.text }];
      state.historyTokens = (g.tokensIn ?? 0) + 1 + g.tokensOut;
    }
    state.stats = { load_ms: state.loadMs, ttft_ms: g.ttftMs, prefill_tok_s: g.prefillTokS, decode_tok_s: g.decodeTokS,
      tokens_in: g.tokensIn, tokens_out: g.tokensOut, tokens_out_retokenized: g.tokensOutRetokenized, updates: g.updates,
      precision_used: state.precision.used, runtime: model.runtime.id, engine: g.engine || null,
      cancelled: g.cancelled, engine_kept_running: g.engineKeptRunning, lora_adapter: lora ? loraState.file : null };
    setStat('ttft_ms', fmt(g.ttftMs, 'ms', 0), g.ttftMs);
    setStat('prefill_tok_s', fmt(g.prefillTokS, 'tok/s'), g.prefillTokS);
    setStat('decode_tok_s', fmt(g.decodeTokS, 'tok/s'), g.decodeTokS);
    setStat('tokens', `${g.tokensIn} / ${g.tokensOut}`, `${g.tokensIn}/${g.tokensOut}`);
    setState('ready');
  } catch (e) {
    out.classList.add('error');
    out.textContent = '[generation failed]';
    showError(e.message || String(e));
  } finally {
    out.removeAttribute('aria-busy');
    $('send').disabled = false; $('stop').disabled = true; $('load').disabled = false;
  }
}

async function main() {
  setState('init');
  const bench = benchParams(location.search);
  state.gpu = await detectGpu();
  renderGpu(state.gpu);
  try {
    const r = await fetch('/api/bundles');
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    state.bundles = (await r.json()).bundles;
  } catch (e) {
    showError(`Could not read the bundle list (/api/bundles): ${e.message}`);
  }
  renderBundles();
  const params = new URLSearchParams(location.search);
  if (params.get('bundle') && state.bundles.some((b) => b.file === params.get('bundle'))) $('bundle').value = params.get('bundle');
  const wanted = (params.get('precision') || '').toLowerCase();
  if (['auto', 'f16', 'f32'].includes(wanted)) document.querySelector(`input[name=precision][value=${wanted}]`).checked = true;
  const wantedRuntime = document.querySelector(`input[name=runtime][value="${CSS.escape(params.get('runtime') || '')}"]`);
  if (wantedRuntime) wantedRuntime.checked = true;
  renderBundleInfo();
  renderPrecisionNote();
  $('bundle').addEventListener('change', renderBundleInfo);
  document.querySelectorAll('input[name=precision]').forEach((r) => r.addEventListener('change', renderPrecisionNote));
  document.querySelectorAll('input[name=runtime]').forEach((r) => r.addEventListener('change', renderRuntimeNote));
  $('model-form').addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  $('lora-load').addEventListener('click', () => loadSelectedLora());
  $('chat-form').addEventListener('submit', (ev) => { ev.preventDefault(); const m = $('prompt').value; $('prompt').value = ''; send(m); });
  $('prompt').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); $('chat-form').requestSubmit(); }
  });
  $('stop').addEventListener('click', () => {
    if (!state.abort) return;
    state.abort.abort();
    $('stop').disabled = true;
    $('load-status').textContent = 'Stopping…';
  });
  // Send loads the selected bundle itself when needed, so chat is usable as soon as there is something to load.
  const usable = !document.body.dataset.fatal && state.gpu.supported && state.bundles.length > 0;
  $('load').disabled = !usable;
  $('send').disabled = $('prompt').disabled = !usable;
  if (usable) $('prompt').placeholder = 'Type a message (Enter sends, Shift+Enter for a new line)…';
  if (document.body.dataset.state !== 'error') setState('idle');
  if (bench) await benchmark(bench);
}

async function benchmark(params) {
  $('bench-panel').hidden = false;
  setState('benchmarking');
  const status = (t) => { $('bench-status').textContent = t; };
  const result = await runBenchmark(params, state.gpu, state.bundles, status);
  if (params.post) {
    try { result.posted = await postResult(result); } catch (e) { result.post_error = e.message; }
  }
  window.__benchResult = result;
  $('bench-result').textContent = JSON.stringify(result, null, 2);
  $('bench-result').dataset.ok = String(result.ok);
  status(result.ok ? 'Benchmark finished.' : `Benchmark failed: ${result.error}`);
  if (!result.ok) showError(`Benchmark failed: ${result.error}`); else setState('done');
}

main().catch((e) => showError(`Page error: ${e.message || e}`));
