"""A random-weight bundle as its structure plus a seed: megabytes to ship to a lab host instead of a gigabyte.

Why: speed and memory do not depend on weight values, and the 1B bundles the lab measures on GPUs are built from
random weights anyway (`random:gemma3-1b-it`). A lab host behind a thin link (a lent GPU machine that takes 64 MiB
per call) can still measure them if it gets everything but the weight values and regenerates those itself.

`pack` replaces, in a copy of the bundle, every large numeric array of its model (weight buffers, and the
per-channel scale vectors of quantized tensors) with content a seed determines: integer weight bytes from PCG64's
raw stream (numpy guarantees that stream across versions), float buffers and scales with one constant per tensor
type (so dequantized weights stay in the range real ones have; blockwise int4 scales are float16 buffers). That copy is a real bundle, with the
same structure, buffer sizes and quantization layout byte for byte as the one built, which the lab can run here
too. What is shipped: the bytes outside the PCG64 ranges (graph, tokenizer, constant scales), lzma-compressed, and
the ranges. `unpack` rebuilds the copy, checks its sha256 and writes a manifest the lab reads.

Only the standard library and numpy are needed to unpack.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import lzma
import struct
import sys
import zipfile
from pathlib import Path

MIN_ARRAY_BYTES = 4096
"""Arrays smaller than this are kept as built (norm weights, biases, small constants)."""
_INT8, _UINT8, _INT4, _FLOAT32, _FLOAT16, _INT64, _INT32 = 9, 3, 17, 0, 1, 4, 2
_SCALE_BOUND = 0.05
"""Dequantized weights span about +-0.05, as Gemma-sized layers with N(0, 0.02) weights do."""


@dataclasses.dataclass(frozen=True)
class Region:
    offset: int
    length: int
    fill: str
    """'random' (PCG64 bytes), or a hex byte pattern repeated over the region."""


def _model_span(bundle: Path) -> tuple[int, int]:
    """(offset, length) of the decoder .tflite inside the bundle file (stored, not compressed, in a .task)."""
    if bundle.suffix == ".task":
        with zipfile.ZipFile(bundle) as archive:
            info = archive.getinfo("TF_LITE_PREFILL_DECODE")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{bundle.name}: its model is compressed in the zip; cannot address its arrays")
        with open(bundle, "rb") as handle:
            handle.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", handle.read(4))
        return info.header_offset + 30 + name_length + extra_length, info.file_size
    if bundle.suffix == ".litertlm":
        from sdk_build.gpu.buffers import _litertlm_decoder_span

        return _litertlm_decoder_span(bundle)
    return 0, bundle.stat().st_size


def _vector(table, field_offset: int) -> int | None:
    """Absolute position (in the flatbuffer) of a vector field's first element, or None when absent."""
    o = table.Offset(field_offset)
    return table.Vector(o) if o else None


def regions_of(bundle: Path) -> list[Region]:
    """The bundle's large numeric arrays, as file regions, and what each is to be filled with."""
    from ai_edge_litert import schema_py_generated as schema

    base, length = _model_span(bundle)
    with open(bundle, "rb") as handle:
        handle.seek(base)
        model = handle.read(length)
    root = schema.Model.GetRootAsModel(model, 0)
    regions: dict[int, Region] = {}

    def add(offset: int, size: int, fill: str) -> None:
        if size >= MIN_ARRAY_BYTES and offset not in regions:
            regions[offset] = Region(base + offset, size, fill)

    buffer_type: dict[int, int] = {}
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer_type.setdefault(tensor.Buffer(), tensor.Type())
            quant = tensor.Quantization()
            if quant is None or not quant.ScaleLength():
                continue
            bound = 7 if tensor.Type() == _INT4 else 127
            scale = struct.pack("<f", _SCALE_BOUND / bound).hex()
            position = _vector(quant._tab, 8)  # QuantizationParameters.scale
            if position is not None:
                add(position, quant.ScaleLength() * 4, scale)
    for index in range(1, root.BuffersLength()):
        buffer = root.Buffers(index)
        if buffer.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
            offset, size = int(buffer.Offset()), int(buffer.Size())
        else:
            position = _vector(buffer._tab, 4)  # Buffer.data
            if position is None:
                continue
            offset, size = position, buffer.DataLength()
        kind = buffer_type.get(index)
        if kind == _FLOAT32:
            add(offset, size - size % 4, struct.pack("<f", 0.02).hex())
        elif kind == _FLOAT16:  # blockwise quantization's per-block scales
            add(offset, size - size % 2, struct.pack("<e", _SCALE_BOUND / 7).hex())
        elif kind in (_INT8, _UINT8, _INT4):
            add(offset, size, "random")
    return sorted(regions.values(), key=lambda r: r.offset)


def _random_bytes(seed: int, index: int, length: int) -> bytes:
    import numpy as np

    words = np.random.PCG64([seed, index]).random_raw((length + 7) // 8)
    return words.astype("<u8").tobytes()[:length]


def _fill(region: Region, seed: int, index: int) -> bytes:
    if region.fill == "random":
        return _random_bytes(seed, index, region.length)
    pattern = bytes.fromhex(region.fill)
    return (pattern * (region.length // len(pattern) + 1))[: region.length]


def regenerate(source_bytes_outside: bytes, regions: list[Region], total: int, seed: int, out: Path) -> str:
    """Write the regenerated bundle to `out` (atomically); return its sha256."""
    digest = hashlib.sha256()
    tmp = out.with_name(out.name + ".partial")
    cursor = taken = 0
    with open(tmp, "wb") as handle:
        for index, region in enumerate(regions):
            gap = region.offset - cursor
            chunk = source_bytes_outside[taken: taken + gap]
            taken += gap
            data = _fill(region, seed, index)
            for piece in (chunk, data):
                handle.write(piece)
                digest.update(piece)
            cursor = region.offset + region.length
        tail = source_bytes_outside[taken:]
        handle.write(tail)
        digest.update(tail)
    if cursor + len(tail) != total:
        tmp.unlink()
        raise ValueError(f"{out.name}: the pack is inconsistent ({cursor + len(tail)} bytes rebuilt, {total} expected)")
    tmp.replace(out)
    return digest.hexdigest()


ARCHIVE, INDEX = "weightless.xz", "weightless.json"


def pack(bundles: list[Path], out_dir: Path, seed: int = 0) -> list[dict]:
    """Write `out_dir/weightless.xz` (what lies outside the regenerated regions, of every bundle, as one solid lzma
    stream: bundles share their tokenizer) and `out_dir/weightless.json`, and each regenerated bundle under
    `out_dir/regenerated/` (what the lab host will rebuild: run it here too). Returns the descriptions."""
    from sdk_build.artifacts.manifest import load_manifest

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "regenerated").mkdir(exist_ok=True)
    stream, descriptions = lzma.LZMACompressor(preset=9), []
    with open(out_dir / (ARCHIVE + ".partial"), "wb") as archive:
        for bundle in map(Path, bundles):
            entry = load_manifest(bundle.parent).find(bundle.name)
            if entry is None:
                raise ValueError(f"{bundle.name} is not in {bundle.parent}/manifest.json")
            regions = regions_of(bundle)
            data = bundle.read_bytes()
            outside, cursor = bytearray(), 0
            for region in regions:
                outside += data[cursor: region.offset]
                cursor = region.offset + region.length
            outside += data[cursor:]
            archive.write(stream.compress(bytes(outside)))
            sha = regenerate(bytes(outside), regions, len(data), seed, out_dir / "regenerated" / bundle.name)
            record = entry.to_dict()
            if not record.get("extra", {}).get("largest_tensors"):  # what the lab host checks against its GPU
                from sdk_build.gpu.buffers import largest_tensors

                record.setdefault("extra", {})["largest_tensors"] = [t.to_dict() for t in largest_tensors(bundle, 3)]
            record.update(sha256=sha, extra={**record.get("extra", {}), "weightless": {
                "built_sha256": entry.sha256, "seed": seed,
                "note": "weight values, scales and zero points regenerated from a seed; structure as built"}})
            descriptions.append({"file": bundle.name, "bytes": len(data), "sha256": sha, "seed": seed,
                                 "outside_bytes": len(outside), "regions": [dataclasses.asdict(r) for r in regions],
                                 "manifest_entry": record})
        archive.write(stream.flush())
    (out_dir / (ARCHIVE + ".partial")).replace(out_dir / ARCHIVE)
    (out_dir / INDEX).write_text(json.dumps(descriptions))
    return descriptions


def unpack(pack_dir: Path, bundles_dir: Path) -> list[Path]:
    """Rebuild every packed bundle of `pack_dir` into `bundles_dir`, check each sha256, and record it in the
    folder's manifest.json (the lab's input)."""
    from sdk_build.artifacts.manifest import BundleEntry, update_manifest

    bundles_dir.mkdir(parents=True, exist_ok=True)
    descriptions = json.loads((Path(pack_dir) / INDEX).read_text())
    everything = lzma.decompress((Path(pack_dir) / ARCHIVE).read_bytes())
    built, taken = [], 0
    for info in descriptions:
        outside = everything[taken: taken + info["outside_bytes"]]
        taken += info["outside_bytes"]
        out = bundles_dir / info["file"]
        sha = regenerate(outside, [Region(**r) for r in info["regions"]], info["bytes"], info["seed"], out)
        if sha != info["sha256"]:
            out.unlink()
            raise ValueError(f"{info['file']}: regenerated sha256 {sha} is not the packed {info['sha256']}")
        update_manifest(bundles_dir, BundleEntry.from_dict(info["manifest_entry"]))
        built.append(out)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_tests.weightless", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packer = commands.add_parser("pack", help="BUNDLE... -> OUT_DIR (structure + seed, and the regenerated copy)")
    packer.add_argument("bundles", nargs="+", type=Path)
    packer.add_argument("--out", type=Path, required=True)
    packer.add_argument("--seed", type=int, default=0)
    unpacker = commands.add_parser("unpack", help="PACK_DIR -> BUNDLES_DIR (regenerate, check sha256, manifest)")
    unpacker.add_argument("pack_dir", type=Path)
    unpacker.add_argument("bundles_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            described = pack(args.bundles, args.out, args.seed)
            total = sum(info["bytes"] for info in described)
            shipped = (args.out / ARCHIVE).stat().st_size
            print(f"{len(described)} bundles, {total:,} bytes -> {shipped:,} bytes to ship ({args.out / ARCHIVE})")
        else:
            for path in unpack(args.pack_dir, args.bundles_dir):
                print(f"regenerated {path} ({path.stat().st_size:,} bytes, sha256 checked)")
    except (OSError, ValueError) as exc:
        print(f"weightless: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
