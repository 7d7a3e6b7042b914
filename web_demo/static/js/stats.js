// The per-answer numbers both runtimes report, computed the same way from the same timestamps.

/** TTFT; prefill = tokens in / TTFT; decode = tokens after the first / time after the first token. */
export function finishStats({ started, firstAt, ended, tokensIn, tokensOut, ...rest }) {
  const ttftMs = firstAt === null ? null : firstAt - started;
  const decodeMs = firstAt === null ? null : ended - firstAt;
  return {
    ...rest, tokensIn, tokensOut, ttftMs, decodeMs, totalMs: ended - started,
    prefillTokS: ttftMs && tokensIn ? tokensIn / (ttftMs / 1000) : null,
    decodeTokS: decodeMs && tokensOut > 1 ? (tokensOut - 1) / (decodeMs / 1000) : null,
  };
}
