// WebGPU detection and the "does this bundle fit" check. Pure functions where possible so the rules are easy
// to read (and documented in docs/web_demo.md).

export const LIMIT_NAMES = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
];

// MediaPipe's own warning threshold: most LLMs need buffers/bindings of at least this many bytes.
export const ENGINE_MIN_BINDING = 524550144;

// Bundle formats a runtime on this page reads (runtimes.js): .task (MediaPipe) and .litertlm (LiteRT-LM).
export const WEB_FORMATS = ['task', 'litertlm'];

/** Returns {supported, reason?, vendor, architecture, device, description, features[], shaderF16, limits{}}. */
export async function detectGpu() {
  if (!('gpu' in navigator) || !navigator.gpu) {
    return { supported: false, reason: 'This browser does not expose WebGPU (navigator.gpu is missing). ' +
      'Use a recent Chrome/Edge (or Chromium with --enable-unsafe-webgpu) over HTTPS or localhost.' };
  }
  let adapter;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { supported: false, reason: `requestAdapter() failed: ${e.message || e}` };
  }
  if (!adapter) {
    return { supported: false, reason: 'WebGPU is present but no adapter is available (GPU blocklisted or disabled).' };
  }
  const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
  const limits = {};
  for (const name of LIMIT_NAMES) limits[name] = Number(adapter.limits[name]);
  const features = [...adapter.features].sort();
  return {
    supported: true,
    vendor: info.vendor || '', architecture: info.architecture || '', device: info.device || '',
    description: info.description || '', isFallbackAdapter: Boolean(adapter.isFallbackAdapter || info.isFallbackAdapter),
    features, shaderF16: adapter.features.has('shader-f16'), limits,
  };
}

/**
 * Whether a bundle can load on this adapter: {status: 'fits'|'may-not-fit'|'too-large'|'not-for-web', reason}.
 * Where the build recorded the bundle's largest tensor, that decides. Otherwise: no tensor can be larger than the whole file, so a bundle no bigger than maxStorageBufferBindingSize always
 * fits. A larger one needs the adapter to meet the engine's minimum binding size (its biggest weight buffers,
 * the embedding table, are hundreds of MiB for Gemma-class models); below that it is too large. Formats no
 * runtime on the page reads are 'not-for-web'.
 */
export function fitCheck(entry, gpu) {
  if (entry.format && !WEB_FORMATS.includes(entry.format)) {
    return { status: 'not-for-web', reason: `this page runs ${WEB_FORMATS.map((f) => `.${f}`).join(' and ')} bundles, not .${entry.format}` };
  }
  if (!gpu || !gpu.supported) return { status: 'too-large', reason: 'no WebGPU adapter' };
  const binding = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  // What the build recorded (manifest extra.largest_tensors): the exact test, where it is known.
  const largest = ((entry.extra || {}).largest_tensors || []).reduce((m, t) => Math.max(m, t.bytes || 0), 0);
  if (largest) {
    return largest <= binding
      ? { status: 'fits', reason: `its largest tensor (${fmtBytes(largest)}) fits the adapter's ${fmtBytes(binding)} buffer limit` }
      : { status: 'too-large', reason: `its largest tensor is ${fmtBytes(largest)}, over this adapter's ` +
          `${fmtBytes(binding)} per-buffer limit; use a bundle built for the web-gpu target (GPU layout)` };
  }
  if (entry.bytes <= binding) return { status: 'fits', reason: `fits the adapter's buffer limits (${fmtBytes(binding)})` };
  if (binding < ENGINE_MIN_BINDING) {
    return { status: 'too-large', reason: `${fmtBytes(entry.bytes)} model, but this adapter binds at most ` +
      `${fmtBytes(binding)} per buffer; the engines need ${fmtBytes(ENGINE_MIN_BINDING)} for models this size` };
  }
  const mem = navigator.deviceMemory;  // GiB, capped at 8 by Chrome; absent elsewhere
  if (mem && entry.bytes > mem * 2 ** 30 / 2) {
    return { status: 'may-not-fit', reason: `${fmtBytes(entry.bytes)} is over half of this device's reported memory (${mem} GiB)` };
  }
  return { status: 'fits', reason: `buffer limits ${fmtBytes(binding)} meet the engine's minimum` };
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
