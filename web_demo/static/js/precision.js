// Precision choice. Both runtimes compute in F16 where they can; on adapters without `shader-f16` (SwiftShader,
// some older GPUs) F16 produces garbage: a real Gemma 3 270M fails in MediaPipe with
// "DetokenizerCalculator ... id >= 0 (-1 vs. 0)". So Auto picks F32 there and says so, and F16 is refused.
// `forceF32` is how F32 is asked for: MediaPipe's `forceF32: true`; for LiteRT-LM, a WebGPU device created
// without shader-f16 (@litert-lm/core 0.17.1 has no precision setting of its own).

/** Returns {ok, used: 'f16'|'f32', forceF32, note} or {ok: false, error}. */
export function choosePrecision(requested, gpu) {
  const hasF16 = Boolean(gpu && gpu.shaderF16);
  const adapterName = gpu ? (gpu.architecture || gpu.vendor || 'this adapter') : 'this adapter';
  switch (requested) {
    case 'f32':
      return { ok: true, used: 'f32', forceF32: true, note: 'F32 as requested (forceF32).' };
    case 'f16':
      if (!hasF16) {
        return { ok: false, error: `F16 refused: the WebGPU adapter (${adapterName}) lacks the shader-f16 feature, ` +
          'so F16 inference would produce invalid tokens (e.g. "id >= 0 (-1 vs. 0)"). Choose F32 or Auto.' };
      }
      return { ok: true, used: 'f16', forceF32: false, note: 'F16 as requested (adapter has shader-f16).' };
    case 'auto':
    default:
      return hasF16
        ? { ok: true, used: 'f16', forceF32: false, note: 'Auto: F16 (the adapter has shader-f16).' }
        : { ok: true, used: 'f32', forceF32: true, note: `Auto picked F32: the adapter (${adapterName}) has no shader-f16.` };
  }
}
