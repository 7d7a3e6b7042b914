// Prompt formatting: Gemma's chat template for instruction-tuned bundles, raw text for pretrained ones.
// The template comes from the manifest (`prompt_template`), which the build wrote into the bundle too.

export const GEMMA_TEMPLATE = {
  user_prefix: '<start_of_turn>user\n', user_suffix: '<end_of_turn>\n',
  model_prefix: '<start_of_turn>model\n', model_suffix: '<end_of_turn>\n',
};

/** Template to apply for a manifest entry, or null for raw text. */
export function templateFor(entry) {
  if (!entry || !entry.instruction_tuned) return null;
  const t = entry.prompt_template || {};
  return (t.user_prefix || t.model_prefix) ? t : GEMMA_TEMPLATE;
}

/**
 * Build the engine input. `history` is [{role: 'user'|'model', text}] of earlier complete turns; pretrained
 * bundles get the message alone, as raw text to continue.
 */
export function formatPrompt(entry, message, history = []) {
  const t = templateFor(entry);
  if (!t) return message;
  let out = '';
  for (const turn of history) {
    out += turn.role === 'user'
      ? t.user_prefix + turn.text + t.user_suffix
      : t.model_prefix + turn.text + (t.model_suffix || '');
  }
  return out + t.user_prefix + message + t.user_suffix + t.model_prefix;
}
