"""`sdk-build verify` split across two machines: the fp32 reference here, the bundle on a GPU host that has only
LiteRT-LM (`python -m sdk_build.verify.engine`), the score here again.

    python -m bench.remote_verify plan BUNDLE --out DIR [--precision f16 --precision f32]
        writes DIR/plan.json (the reference) and DIR/request-<backend>.json per engine run, paths relative to DIR
    (on the GPU host)  python3 -m sdk_build.verify.engine DIR/request-gpu-f16.json DIR/result-gpu-f16.json
    python -m bench.remote_verify score BUNDLE DIR
        reads DIR/result-*.json and prints what `sdk-build verify` prints, one report per run

The reference is `verify`'s own (`sdk_build.verify.runs.fp32_reference`: the same prompts, the long one included,
and the same held-out text for perplexity), and so is the scoring.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdk_build.artifacts.manifest import load_manifest
from sdk_build.cli.verify import print_report
from sdk_build.system.atomic import atomic_write_text
from sdk_build.verify import default_prompts, perplexity, score
from sdk_build.verify.engine import EngineConfig
from sdk_build.verify.runs import FP32Reference, engine_outputs, fp32_reference


def _checkpoint_and_tokenizer(bundle: Path):
    import sentencepiece as spm

    from sdk_build.sources import resolve_checkpoint

    entry = load_manifest(bundle.parent).find(bundle.name)
    if entry is None:
        raise SystemExit(f"{bundle.name} is not in {bundle.parent}/manifest.json")
    checkpoint = resolve_checkpoint(entry.checkpoint["ref"], None, allow_custom_shape=entry.model == "gemma3-custom")
    return entry, checkpoint, spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))


def write_plan(bundle: Path, out: Path, precisions: list[str], new_tokens: int, perplexity_tokens: int) -> None:
    entry, checkpoint, tokenizer = _checkpoint_and_tokenizer(bundle)
    prompts = default_prompts(tokenizer, checkpoint.shape.sliding_window, entry.ekv, new_tokens)
    reference = fp32_reference(checkpoint, tokenizer, entry.ekv, prompts, new_tokens, perplexity_tokens)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "plan.json", json.dumps(reference.to_dict()))
    for precision in precisions:
        config = EngineConfig("gpu", precision)
        request = {"bundle": bundle.name, "max_num_tokens": entry.ekv, "backend": "gpu", "precision": precision,
                   "threads": 2, "cache_root": "/tmp/gemma-edge-cache", **reference.engine_request()}
        atomic_write_text(out / f"request-{config.key}.json", json.dumps(request))


def score_results(bundle: Path, out: Path) -> None:
    entry, _checkpoint, tokenizer = _checkpoint_and_tokenizer(bundle)
    reference = FP32Reference.from_dict(json.loads((out / "plan.json").read_text()))
    for path in sorted(out.glob("result-*.json")):
        result = json.loads(path.read_text())
        if result["error"]:
            print(f"{path.name}: {result['error']}")
            continue
        produced = engine_outputs(result)
        report = score(reference.plan, produced, tokenizer, bundle.name, entry.checkpoint["ref"], None)
        report.perplexity = reference.perplexity(produced["scores"])
        report.backend, report.precision = "gpu", path.stem.split("-")[-1]
        report.adapter = {"device": result.get("device") or {"name": "?", "driver": "?", "software": False,
                                                             "f16": True, "max_storage_buffer_range": 0},
                          "engine": result.get("adapter")}
        print_report(report)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.remote_verify", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan")
    plan.add_argument("bundle", type=Path)
    plan.add_argument("--out", type=Path, required=True)
    plan.add_argument("--precision", action="append", choices=["f16", "f32"], default=None)
    plan.add_argument("--tokens", type=int, default=16)
    plan.add_argument("--perplexity-tokens", type=int, default=perplexity.DEFAULT_TOKENS,
                      help="held-out tokens scored by both sides, as `sdk-build verify` (0: none)")
    scoring = commands.add_parser("score")
    scoring.add_argument("bundle", type=Path)
    scoring.add_argument("results", type=Path)
    args = parser.parse_args()
    if args.command == "plan":
        write_plan(args.bundle, args.out, args.precision or ["f16", "f32"], args.tokens, args.perplexity_tokens)
    else:
        score_results(args.bundle, args.results)


if __name__ == "__main__":
    main()
