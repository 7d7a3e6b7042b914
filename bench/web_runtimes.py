"""The same model through both web runtimes, each against LiteRT-LM on this CPU running the very same file.

    python -m bench.web_runtimes --bundles DIR [--file F.task --file F.litertlm] [--prompt TEXT] [--tokens 16]
                                 [--screenshots docs]

The demo page answers `--prompt` greedily in headless Chromium (F32: SwiftShader has no shader-f16), one answer
per bundle: `.task` through MediaPipe LLM Inference, `.litertlm` through @litert-lm/core. LiteRT-LM's CPU engine
then decodes the same number of tokens from the same file: a `.task` through a raw-prompt session (what MediaPipe
runs: the text after BOS), a `.litertlm` through a Conversation (what @litert-lm/core runs: the text through the
bundle's own template). Agreement counts the tokens (the checkpoint's tokenizer, on both texts) that match
position by position, and where they first differ; `--fp32-reference` also compares each with the fp32 PyTorch
model's greedy continuation (what `sdk-build verify` calls the reference), which tells a GPU that keeps
activations in float (both web runtimes) from XNNPACK's dynamic int8 activations on the CPU. The page's load /
TTFT / prefill / decode figures here are one answer each, first shader compilation included; the lab's protocol
(`python -m device_tests.lab web`) gives the medians. `--screenshots DIR` saves the page after each answer (web_demo_<runtime>_screenshot.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.common import print_table, write_results
from device_tests.runners.web_server import serve_bundles
from sdk_build.artifacts.manifest import BundleEntry, load_manifest
from sdk_build.sources import resolve_checkpoint
from sdk_build.verify import compare, reference_greedy

DEFAULT_PROMPT = "The capital of France is"
WEB_FORMATS = ("task", "litertlm")


def chosen_bundles(bundles_dir: Path, files: list[str] | None) -> list[BundleEntry]:
    entries = [e for e in load_manifest(bundles_dir).bundles if e.format in WEB_FORMATS]
    if files:
        entries = [e for e in entries if e.file in files]
        missing = sorted(set(files) - {e.file for e in entries})
        if missing:
            raise SystemExit(f"error: not .task/.litertlm bundles in {bundles_dir}/manifest.json: {', '.join(missing)}")
    if not entries:
        raise SystemExit(f"error: no .task or .litertlm bundle in {bundles_dir}/manifest.json")
    return entries


def tokenizer_for(entry: BundleEntry) -> Any:
    """The checkpoint's SentencePiece model, to count the prompt and to compare texts token by token."""
    import sentencepiece as spm

    checkpoint = resolve_checkpoint(entry.checkpoint["ref"], allow_custom_shape=True)
    return spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))


def page_answers(base_url: str, entries: list[BundleEntry], prompt: str, max_tokens: int, timeout_s: float,
                 screenshots: Path | None) -> dict[str, dict[str, Any]]:
    """One greedy answer per bundle in one browser; the runtime is the page's Auto choice (by format)."""
    from web_demo.automation import ask, launch_browser, open_demo

    answers = {}
    with launch_browser() as context:
        page = open_demo(context, base_url)
        page.set_viewport_size({"width": 1000, "height": 900})
        for entry in entries:
            print(f"page: {entry.file}", flush=True)
            answers[entry.file] = ask(page, entry.file, prompt, precision="f32", max_tokens=max_tokens, top_k=1,
                                      temperature=0, timeout_s=timeout_s)
            runtime = (answers[entry.file].get("stats") or {}).get("runtime")
            if screenshots and runtime:
                screenshots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshots / f"web_demo_{runtime}_screenshot.png"), full_page=True)
    return answers


def cpu_text(path: Path, fmt: str, prompt: str, new_tokens: int, ekv: int) -> str:
    """LiteRT-LM on this CPU (2 threads), top-1, `new_tokens` tokens, fed the way the page's runtime feeds the file."""
    import litert_lm

    engine = litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU(thread_count=2), max_num_tokens=ekv)
    try:
        sampler = litert_lm.SamplerConfig(top_k=1)
        if fmt == "litertlm":
            conversation = engine.create_conversation(sampler_config=sampler)
            try:
                reply = conversation.send_message(prompt, max_output_tokens=new_tokens)
                return "".join(part.text for part in reply.contents)
            finally:
                conversation.close()
        session = engine.create_session(apply_prompt_template=False, sampler_config=sampler, max_output_tokens=new_tokens)
        try:
            session.run_prefill([prompt])
            texts = session.run_decode().texts
            return texts[0] if texts else ""
        finally:
            session.close()
    finally:
        engine.close()


def fp32_continuation(entry: BundleEntry, tokenizer: Any, prompt: str, new_tokens: int) -> str:
    """The fp32 litert-torch model's greedy continuation of `prompt` (sdk_build.verify's reference)."""
    from sdk_build.convert.model_loader import load_torch_model

    checkpoint = resolve_checkpoint(entry.checkpoint["ref"], allow_custom_shape=True)
    cache_len = len(tokenizer.encode(prompt)) + new_tokens + 2
    model = load_torch_model(checkpoint, mask_cache_size=cache_len)
    (ids,) = reference_greedy(model, tokenizer, (prompt,), new_tokens, cache_len)
    return str(tokenizer.decode(ids))


def agreement(tokenizer: Any, reference: str | None, produced: str | None) -> dict[str, Any]:
    ref_ids, got_ids = tokenizer.encode(reference or ""), tokenizer.encode(produced or "")
    matching, divergence = compare(ref_ids, got_ids)
    return {"agreeing": matching, "compared": len(ref_ids), "first_divergence": divergence}


def row(entry: BundleEntry, answer: dict[str, Any], cpu: str | None, fp32: str | None, tokenizer: Any) -> dict[str, Any]:
    stats = answer.get("stats") or {}
    vs_cpu = agreement(tokenizer, cpu, answer.get("text"))
    return {
        "file": entry.file, "format": entry.format, "runtime": stats.get("runtime"), "error": answer.get("error"),
        "precision_used": stats.get("precision_used"), "load_ms": stats.get("load_ms"), "ttft_ms": stats.get("ttft_ms"),
        "prefill_tok_s": stats.get("prefill_tok_s"), "decode_tok_s": stats.get("decode_tok_s"),
        "tokens_in": stats.get("tokens_in"), "tokens_out": stats.get("tokens_out"), "engine": stats.get("engine"),
        "page_text": answer.get("text"), "cpu_text": cpu, "agreeing_tokens": vs_cpu["agreeing"],
        "compared_tokens": vs_cpu["compared"], "first_divergence": vs_cpu["first_divergence"],
        "fp32_text": fp32, "vs_fp32": agreement(tokenizer, fp32, answer.get("text")) if fp32 is not None else None,
        "cpu_vs_fp32": agreement(tokenizer, fp32, cpu) if fp32 is not None and cpu is not None else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.web_runtimes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", type=Path, required=True, help="bundle folder with manifest.json")
    parser.add_argument("--file", action="append", help="bundle file name (repeatable; default: every .task/.litertlm)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per answer (SwiftShader: about 1 s each)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per answer in the page")
    parser.add_argument("--screenshots", type=Path, default=None, help="save the page after each answer here")
    parser.add_argument("--fp32-reference", action="store_true", help="also compare with the fp32 PyTorch model")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    entries = chosen_bundles(args.bundles, args.file)
    tokenizer = tokenizer_for(entries[0])
    max_tokens = len(tokenizer.encode(args.prompt)) + 1 + args.tokens  # prompt + BOS + answer
    with serve_bundles(args.bundles) as base_url:
        answers = page_answers(base_url, entries, args.prompt, max_tokens, args.timeout, args.screenshots)
    fp32 = fp32_continuation(entries[0], tokenizer, args.prompt, args.tokens) if args.fp32_reference else None
    rows = []
    for entry in entries:
        answer = answers[entry.file]
        produced = (answer.get("stats") or {}).get("tokens_out") or args.tokens
        cpu = cpu_text(args.bundles / entry.file, entry.format, args.prompt, produced, entry.ekv) if not answer["error"] else None
        rows.append(row(entry, answer, cpu, fp32, tokenizer))
    print_table(
        f"Web runtimes vs LiteRT-LM CPU: {args.prompt!r}, {args.tokens} new tokens, greedy, F32",
        ["file", "runtime", "load s", "TTFT s", "prefill tok/s", "decode tok/s", "agree (tokens)", "page text"],
        [
            [r["file"], r["runtime"] or r["error"], (r["load_ms"] or 0) / 1000, (r["ttft_ms"] or 0) / 1000,
             r["prefill_tok_s"], r["decode_tok_s"], f"{r['agreeing_tokens']}/{r['compared_tokens']}",
             repr((r["page_text"] or "")[:60])]
            for r in rows
        ],
    )
    for r in rows:
        print(f"{r['file']}:\n  page: {r['page_text']!r}\n  cpu:  {r['cpu_text']!r}")
        if r["vs_fp32"]:
            print(f"  fp32: {r['fp32_text']!r}\n  page vs fp32 {r['vs_fp32']['agreeing']}/{r['vs_fp32']['compared']}, "
                  f"cpu vs fp32 {r['cpu_vs_fp32']['agreeing']}/{r['cpu_vs_fp32']['compared']}")
    path = write_results(f"web_runtimes_{args.bundles.name}", {"prompt": args.prompt, "tokens": args.tokens, "rows": rows})
    print(f"wrote {path}")
    return 0 if all(not r["error"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
