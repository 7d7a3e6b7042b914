// Bundle download shared by both runtimes: a streamed fetch with progress (the file is never held whole in JS
// by this code), and a look at the first bytes so a file of the wrong format is refused with one clear line
// before any engine sees it (each engine's own message for a foreign file is cryptic or a crash).

export class DownloadError extends Error {}
export class EngineError extends Error {}
export class FormatError extends Error {}

export function errorText(e) {
  if (Array.isArray(e)) return e.map(errorText).join('; ');
  return (e && (e.message || String(e))) || 'unknown error';
}

// A .litertlm starts with the magic "LITERTLM" (litert_lm_builder.litertlm_core.HEADER_MAGIC_BYTES); a .task is
// 4 zero bytes, then a zip (local file header "PK\x03\x04").
const MAGICS = [
  { format: 'litertlm', bytes: [0x4c, 0x49, 0x54, 0x45, 0x52, 0x54, 0x4c, 0x4d], what: 'LiteRT-LM container' },
  { format: 'task', bytes: [0, 0, 0, 0, 0x50, 0x4b, 0x03, 0x04], what: 'MediaPipe .task zip' },
];

/** 'task' | 'litertlm' | null for the first bytes of a file. */
export function sniffFormat(head) {
  const found = MAGICS.find((m) => m.bytes.every((b, i) => head[i] === b));
  return found ? found.format : null;
}

const describe = (format) => (MAGICS.find((m) => m.format === format) || { what: 'unknown format' }).what;

/**
 * The one-line refusal for a file of `actual` format (null: unknown) given to a runtime that reads
 * runtime.formats; `listed` is the format its manifest entry claims (when the bytes disagree, the entry is wrong).
 */
export function formatMismatch(file, actual, runtime, listed = actual) {
  const wanted = runtime.formats.map((f) => `.${f}`).join(' or ');
  if (!actual) return `${file} is not a bundle this page knows (neither .task nor .litertlm); ${runtime.label} loads ${wanted} bundles.`;
  const what = `a .${actual} bundle (${describe(actual)})`;
  if (listed && listed !== actual) {
    return `${file} is ${what}, though its manifest entry says .${listed}; ${runtime.label} loads ${wanted} bundles. ` +
      'Rebuild the bundle or fix manifest.json.';
  }
  return `${file} is ${what}, but ${runtime.label} loads ${wanted} bundles; choose the runtime for .${actual} (or Auto).`;
}

async function httpError(entry, response) {
  let detail = '';
  try { detail = (await response.json()).error || ''; } catch { /* not JSON */ }
  return new DownloadError(`Download of ${entry.file} failed: HTTP ${response.status}${detail ? ` (${detail})` : ''}`);
}

/**
 * Start downloading `entry` for `runtime` ({label, formats}). Resolves once the first bytes are in and match
 * the runtime's formats (else rejects with FormatError). Returns {stream, total, loaded()}: `stream` is a
 * ReadableStream of the whole file that calls onProgress(loadedBytes, totalBytes) as the engine reads it.
 */
export async function openBundle(entry, runtime, onProgress = () => {}) {
  let response;
  try {
    response = await fetch(entry.path || entry.url);
  } catch (e) {
    throw new DownloadError(`Download of ${entry.file} failed: ${errorText(e)}`);
  }
  if (!response.ok) throw await httpError(entry, response);
  const total = Number(response.headers.get('Content-Length')) || entry.bytes;
  const reader = response.body.getReader();
  const head = [];
  let headBytes = 0;
  try {
    while (headBytes < 8) {
      const { done, value } = await reader.read();
      if (done) break;
      head.push(value);
      headBytes += value.byteLength;
    }
  } catch (e) {
    throw new DownloadError(`Download of ${entry.file} failed: ${errorText(e)}`);
  }
  const first = new Uint8Array(headBytes);
  head.reduce((offset, chunk) => { first.set(chunk, offset); return offset + chunk.byteLength; }, 0);
  const actual = sniffFormat(first);
  if (!runtime.formats.includes(actual)) {
    reader.cancel().catch(() => {});
    throw new FormatError(`Wrong bundle format: ${formatMismatch(entry.file, actual, runtime, entry.format)}`);
  }
  let loaded = 0;
  const stream = new ReadableStream({
    start(controller) {
      for (const chunk of head) { loaded += chunk.byteLength; controller.enqueue(chunk); }
      onProgress(loaded, total);
    },
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) { controller.close(); return; }
        loaded += value.byteLength;
        onProgress(loaded, total);
        controller.enqueue(value);
      } catch (e) {
        controller.error(new DownloadError(`Download of ${entry.file} failed: ${errorText(e)}`));
      }
    },
    cancel(reason) { return reader.cancel(reason); },
  });
  return { stream, total, loaded: () => loaded };
}
