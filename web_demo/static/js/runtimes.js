// Which runtime runs a bundle: by default the one for the bundle's format (.task: MediaPipe LLM Inference,
// .litertlm: LiteRT-LM); a runtime picked by hand that cannot read the bundle's format is refused in one line.
// Each runtime is {id, label, npm, formats, appliesTemplate, cancelStopsEngine, load(entry, options, onProgress)}
// and load() resolves to a model {loadMs, countTokens|null, generate, promptOfTokens, loadLora, close}.
import { formatMismatch } from './download.js';
import { runtime as litertlm } from './engine_litertlm.js';
import { runtime as mediapipe } from './engine_mediapipe.js';

export const RUNTIMES = [mediapipe, litertlm];

export const runtimeById = (id) => RUNTIMES.find((r) => r.id === id) || null;

/** {ok: true, runtime, note} or {ok: false, error} for `entry` and the requested runtime id ('auto' or an id). */
export function chooseRuntime(entry, requested = 'auto') {
  const format = entry.format || 'task';
  if (requested && requested !== 'auto') {
    const runtime = runtimeById(requested);
    if (!runtime) return { ok: false, error: `Unknown runtime ${JSON.stringify(requested)} (have: auto, ${RUNTIMES.map((r) => r.id).join(', ')})` };
    if (!runtime.formats.includes(format)) return { ok: false, error: `Wrong bundle format: ${formatMismatch(entry.file, format, runtime)}` };
    return { ok: true, runtime, note: `${runtime.label} (chosen).` };
  }
  const runtime = RUNTIMES.find((r) => r.formats.includes(format));
  if (!runtime) return { ok: false, error: `No runtime on this page reads .${format} bundles (${entry.file}).` };
  return { ok: true, runtime, note: `${runtime.label} (Auto: it reads .${format}).` };
}
