"""Verify a bundle built with a LoRA adapter against the fp32 PyTorch model with that adapter applied.

- fused bundles: the reference is the litert-torch model of the fused checkpoint, re-merged from the base and the
  adapter recorded in the manifest (both fingerprints must still match);
- runtime bundles: the bundle runs in LiteRT-LM with its manifest-listed adapter file (`lora_path`), and the
  reference is the base model fed the same LoRA weights through litert-torch's own LoRA path. LiteRT-LM cannot run
  a runtime bundle without an adapter (its LoRA inputs would be left unset), so one must be listed.
"""

from __future__ import annotations

from pathlib import Path

from sdk_build.artifacts.manifest import BundleEntry, load_manifest
from sdk_build.errors import VerifyError
from sdk_build.lora.adapter import LoraAdapter, load_adapter
from sdk_build.sources import Checkpoint, default_cache_dir


class LoraBoundModel:
    """A litert-torch LoRA decoder called like the plain one (`model(tokens, positions, cache)`), adapter applied."""

    def __init__(self, model, lora) -> None:
        self._model, self._lora = model, lora

    def __call__(self, tokens, input_pos, kv_cache):
        return self._model(tokens, input_pos, kv_cache, lora=self._lora)

    def __getattr__(self, name: str):
        return getattr(self._model, name)


class LoraSessionEngine:
    """A LiteRT-LM engine whose sessions all run with the adapter file `adapter_path`."""

    def __init__(self, engine, adapter_path: Path) -> None:
        self._engine, self._adapter_path = engine, adapter_path

    def create_session(self, **kwargs):
        from litert_lm import LoraConfig

        return self._engine.create_session(lora_config=LoraConfig(lora_path=str(self._adapter_path)), **kwargs)

    def close(self) -> None:
        self._engine.close()


def open_lora_engine(bundle: Path, ekv: int, threads: int, rank: int, adapter_path: Path) -> LoraSessionEngine:
    from litert_lm import Backend, Engine, LoraRankConfig

    from sdk_build.sources.checkpoint import default_cache_dir
    from sdk_build.verify.engine import EngineConfig, engine_cache_dir

    cache = engine_cache_dir(bundle, EngineConfig("cpu", None, threads), default_cache_dir())  # not beside it
    try:
        engine = Engine(
            str(bundle),
            backend=Backend.CPU(thread_count=threads),
            max_num_tokens=ekv,
            lora_rank_config=LoraRankConfig(lora_rank=rank),
            cache_dir=str(cache),
        )
    except Exception as exc:
        raise VerifyError(f"LiteRT-LM could not load {bundle.name} with LoRA rank {rank}: {exc}") from exc
    return LoraSessionEngine(engine, adapter_path)


def recorded_adapter(record: dict, checkpoint: Checkpoint, what: str) -> LoraAdapter:
    """Reload the adapter a manifest record names and check it is the one the bundle was built with."""
    adapter = load_adapter(Path(record["source"]), checkpoint.shape)
    if adapter.fingerprint != record["fingerprint"]:
        raise VerifyError(
            f"the LoRA adapter at {record['source']} has changed since {what} was built "
            "(fingerprint differs); rebuild it"
        )
    return adapter


def verify_lora_bundle(
    bundle: Path,
    entry: BundleEntry,
    checkpoint: Checkpoint,
    *,
    cache_dir: Path | None,
    new_tokens: int,
    prompts: tuple[str, ...],
    threads: int,
    min_agreement: float | None,
):
    import sentencepiece as spm

    from sdk_build.convert.model_loader import load_torch_model
    from sdk_build.verify.fidelity import compare_all, open_engine

    record = entry.lora or {}
    tokenizer = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    cache_len = min(entry.ekv, max(len(tokenizer.encode(p)) for p in prompts) + new_tokens + 2)
    if record.get("mode") == "fused":
        from sdk_build.lora.fuse import fused_checkpoint

        adapter = recorded_adapter(record, checkpoint, bundle.name)
        fused = fused_checkpoint(checkpoint, adapter, Path(cache_dir) if cache_dir else default_cache_dir())
        model = load_torch_model(fused, mask_cache_size=cache_len)
        engine = open_engine(bundle, entry.ekv, threads)
    elif record.get("mode") == "runtime":
        from sdk_build.lora.litert_lora import pad_rank, to_litert_lora

        listed = load_manifest(bundle.parent).adapters_for(bundle.name)
        if not listed:
            raise VerifyError(
                f"{bundle.name} takes a runtime LoRA adapter but manifest.json lists none for it; "
                "rebuild it with --lora-mode runtime --lora ADAPTER"
            )
        adapter_entry = listed[0]
        adapter = recorded_adapter(adapter_entry.lora, checkpoint, adapter_entry.file)
        lora = pad_rank(to_litert_lora(adapter, checkpoint.shape), adapter_entry.rank)
        model = LoraBoundModel(load_torch_model(checkpoint, mask_cache_size=cache_len, lora_inputs=True), lora)
        engine = open_lora_engine(bundle, entry.ekv, threads, adapter_entry.rank, bundle.parent / adapter_entry.file)
    else:
        raise VerifyError(f"{bundle.name}: unknown LoRA mode {record.get('mode')!r} in manifest.json")
    try:
        return compare_all(
            model, engine, tokenizer, bundle, entry.checkpoint["ref"], prompts, new_tokens, cache_len, min_agreement
        )
    finally:
        engine.close()
