// LoRA adapters on the page: the runtime adapter files the manifest lists for the selected bundle (served by this
// server under /bundles/), loaded into the engine with the model's loadLora() and passed to generate() when
// "Answer with the LoRA adapter" is ticked. State is mirrored on window.__demo.lora for automation.
//
// Neither web runtime loads one into our bundles: MediaPipe tasks-genai 0.10.29 refuses LoRA for converted .task
// models ("LoRA is not supported for converted LLM models (.task format) yet..."), it loads adapters only for its
// own .bin GPU models; @litert-lm/core 0.17.1 has no call to load an adapter at all. When the runtime refuses, the
// page says so and points at the fused bundle, which carries the adapter in its weights and needs no runtime support.

const $ = (id) => document.getElementById(id);
export const loraState = { file: null, model: null, error: null, loadedFor: null };

/** LoRA ranks to create the engine with (loraRanks), for bundles built with LoRA-input signatures. */
export function loraRanksFor(entry) {
  return entry && entry.lora && entry.lora.mode === 'runtime' ? [entry.lora.rank] : undefined;
}

/** Describe the selected bundle's LoRA (fused or runtime) and list the adapter files that fit it. */
export function renderLora(entry) {
  const panel = $('lora-panel');
  const info = $('lora-info');
  const select = $('lora-select');
  select.replaceChildren();
  const adapters = (entry && entry.adapters) || [];
  for (const a of adapters) {
    const opt = document.createElement('option');
    opt.value = a.file;
    const modules = a.lora.target_modules.join('/');
    opt.textContent = `${a.file} (r=${a.lora.rank} as ${a.rank}, alpha ${a.lora.alpha}, ${modules})`;
    select.append(opt);
  }
  const lora = entry && entry.lora;
  if (lora && lora.mode === 'fused') {
    info.textContent = `LoRA adapter fused into this bundle's weights (r=${lora.rank}, alpha ${lora.alpha}, ` +
      `${lora.target_modules.join('/')}); it answers with the adapter, at the base model's speed.`;
  } else if (lora && lora.mode === 'runtime') {
    info.textContent = adapters.length
      ? `This bundle takes a LoRA adapter at run time (rank ${lora.rank}). ` +
        'Load one, then tick the box to answer with it.'
      : `This bundle takes a LoRA adapter at run time (rank ${lora.rank}), but the manifest lists none for it.`;
  } else {
    info.textContent = '';
  }
  panel.hidden = !lora;
  select.disabled = $('lora-load').disabled = !adapters.length;
  resetLora();
}

/** Forget a loaded adapter (it belongs to one engine instance). */
export function resetLora() {
  Object.assign(loraState, { file: null, model: null, error: null, loadedFor: null });
  $('lora-use').checked = false;
  $('lora-use').disabled = true;
  $('lora-status').textContent = '';
  $('lora-status').className = 'hint';
}

/** Load the selected adapter file into `model`; returns true on success, shows the runtime's message otherwise. */
export async function loadLora(model, entry) {
  const adapter = ((entry && entry.adapters) || []).find((a) => a.file === $('lora-select').value);
  if (!adapter) return false;
  const status = $('lora-status');
  status.textContent = `Loading ${adapter.file}…`;
  try {
    loraState.model = await model.loadLora(adapter.path || adapter.url);
    Object.assign(loraState, { file: adapter.file, error: null, loadedFor: entry.file });
    $('lora-use').disabled = false;
    $('lora-use').checked = true;
    status.textContent = `Loaded ${adapter.file}.`;
    status.className = 'hint';
    return true;
  } catch (e) {
    const message = (e && (e.message || String(e))) || 'unknown error';
    Object.assign(loraState, { file: adapter.file, model: null, error: message, loadedFor: null });
    const fused = entry.file.replace(/_lora-r\d+(\.\w+)$/, `_lora-${adapter.lora.source.split('/').pop()}$1`);
    status.textContent = `This runtime cannot load ${adapter.file}: ${message} ` +
      'Answers stay without the adapter. Build the adapter in fused mode ' +
      '(sdk-build build --lora ... --lora-mode fused, ' +
      `e.g. ${fused}) to use it in the browser.`;
    status.className = 'hint bad';
    return false;
  }
}

/** The LoraModel to answer with, or null for the base model. */
export function activeLora(entry) {
  const usable = $('lora-use').checked && loraState.model && loraState.loadedFor === (entry && entry.file);
  return usable ? loraState.model : null;
}
