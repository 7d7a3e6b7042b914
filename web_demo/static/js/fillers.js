// Benchmark prompts of an exact token count. Digits tokenize one per token in Gemma's tokenizer (split_digits);
// spaced digits and words are fallbacks for tokenizers where that does not hold. Every run starts at its own
// offset so no two runs share a prefix (an engine may reuse a cached prefix, which would fake the prefill speed).

export const FILLERS = [
  Array.from({ length: 16384 }, (_, i) => String(i % 10)).join(''),
  Array.from({ length: 8192 }, (_, i) => String(i % 10)).join(' '),
  'The quick brown fox jumps over the lazy dog. '.repeat(400),
];

/** The digit filler for `run`, cut to `length` characters. */
export const digits = (length, run = 0) => FILLERS[0].slice(run % 10, (run % 10) + Math.max(0, length));

/**
 * A prompt that `count(text)` says is exactly `n` tokens, by binary search over each filler's length; falls
 * back to the closest length (the result reports the actual count).
 */
export function promptOfTokens(count, n, run = 0) {
  let closest = null;
  for (const filler of FILLERS) {
    const text = filler.slice(run % 10);
    const size = (len) => count(text.slice(0, len));
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
