"""The catalog apps read: built from manifests, validated against its JSON Schema, served at /api/catalog.

Covers the tiny bundles (built by the real pipeline), the Gemma 3 270M default set and the 1B target matrix
(manifest entries made from the real spec files, sdk_build/matrices/demo.toml and gemma3_1b.toml, with
measured or published sizes, so the test needs no multi-GB bundle), the memory estimate against the KV-cache
tensors of a real bundle, and the reader's refusals.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from web_support import LiveServer, live_server, make_serving_dir

from sdk_build.architecture import GEMMA3_1B, GEMMA3_270M, KNOWN_SHAPES
from sdk_build.artifacts.catalog import (
    CATALOG_NAME,
    SCHEMA_FILE,
    Selection,
    build_catalog,
    parse_catalog,
    select,
    write_catalog,
)
from sdk_build.artifacts.manifest import BundleEntry, load_manifest
from sdk_build.artifacts.naming import bundle_filename
from sdk_build.artifacts.runtime_memory import window_kv_cache_default
from sdk_build.convert.bundle import START_TOKEN, STOP_TOKENS, prompt_template
from sdk_build.convert.export import ExportOptions
from sdk_build.convert.kv_cache import kv_layout
from sdk_build.errors import CatalogError
from sdk_build.matrix import DEMO_PLAN, load_matrix
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.spec import BundleFormat, VariantSpec

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
GIB = 2**30

# Sizes of the files the spec files describe. 1B: Google's published sizes (model card, MiB), the web files from
# Google's GPU converter. 270M: measured on this machine (README; block32 from `sdk-build build-defaults`).
PUBLISHED_1B_MIB = {
    ("fp32", 1280): 3824,
    ("dynamic_int4_block128", 1280): 657,
    ("dynamic_int4_block128", 4096): 657,
    ("dynamic_int4_block32", 1280): 688,
    ("dynamic_int4_block32", 4096): 688,
    ("int4_qat", 2048): 529,
    ("dynamic_int8", 1280): 1005,
    ("dynamic_int8", 4096): 1005,
}
PUBLISHED_1B_WEB_MIB = {"gemma3-1b-it-int8-web": 1011, "gemma3-1b-it-int4-web": 700}
MEASURED_270M_BYTES = {
    ("dynamic_int8", "task"): 295_718_758,
    ("dynamic_int8", "litertlm"): 295_762_224,
    ("dynamic_int4_block32", "task"): 246_235_798,
    ("dynamic_int4_block32_gptq", "task"): 241_852_630,  # the demo's `int4` until issue 21's mixed recipes
    ("dynamic_int4_block32_gptq_down8", "task"): 252_708_614,  # the demo's `int4` (bench.int4_recipes, 2026-12-02)
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_valid(validator: jsonschema.Draft202012Validator, catalog: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(catalog), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def spec_entry(
    model: str,
    instruction_tuned: bool,
    variant: VariantSpec,
    fmt: BundleFormat,
    size: int,
    targets: list[str],
    ref: str,
) -> BundleEntry:
    """The manifest entry a build of `variant` records (pipeline.build + run_matrix), with a given size.

    The sha256 is a stand-in (hash of the name): these files are not built here.
    """
    checkpoint = Checkpoint(
        ref=ref,
        directory=Path("/nonexistent"),
        model=model,
        shape=KNOWN_SHAPES[model],
        instruction_tuned=instruction_tuned,
        qat=False,
        fingerprint="0" * 32,
    )
    name = bundle_filename(checkpoint, variant, fmt)
    return BundleEntry(
        file=name,
        bytes=size,
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        model=model,
        quantization=variant.recipe.value,
        ekv=variant.ekv,
        prefill_lengths=sorted(variant.prefill_lengths),
        target=variant.target.value,
        format=fmt.value,
        instruction_tuned=instruction_tuned,
        start_token=START_TOKEN,
        stop_tokens=list(STOP_TOKENS),
        prompt_template=prompt_template(instruction_tuned).to_dict(),
        checkpoint={"ref": ref, "fingerprint": "0" * 32},
        spec_fingerprint="0" * 32,
        tool_versions={"gemma-edge": "0.1.0"},
        build_seconds=0.0,
        peak_rss_bytes=0,
        created_utc="2026-11-23T00:00:00Z",
        extra={"targets": targets,  # the export options a build for these targets records (pipeline.build)
               "export_options": ExportOptions(window_kv_cache=window_kv_cache_default(
                   targets, KNOWN_SHAPES[model], variant.ekv, variant.prefill_lengths)).identity()},
    )


def matrix_1b_entries() -> list[BundleEntry]:
    matrix = load_matrix()  # sdk_build/matrices/gemma3_1b.toml
    entries = []
    for planned in matrix.plan():
        spec = planned.spec
        mib = PUBLISHED_1B_WEB_MIB.get(spec.output_name or "") or PUBLISHED_1B_MIB[(spec.recipe.value, spec.ekv)]
        for fmt in spec.formats:
            entries.append(
                spec_entry(
                    "gemma3-1b", True, spec, fmt, mib * MIB, [t.value for t in planned.targets], matrix.checkpoint
                )
            )
    return entries


def defaults_270m_entries() -> list[BundleEntry]:
    plan = load_matrix(DEMO_PLAN)
    checkpoint_ref, variants = plan.checkpoint, [planned.spec for planned in plan.plan()]
    return [
        spec_entry(
            "gemma3-270m",
            False,
            v,
            fmt,
            MEASURED_270M_BYTES[(v.recipe.value, fmt.value)],
            [v.target.value],
            checkpoint_ref,
        )
        for v in variants
        for fmt in v.formats
    ]


def by_file(catalog: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["file"]: b for b in catalog["bundles"]}


# ---- the 1B matrix and the 270M set, from the real spec files ----


def test_1b_matrix_catalog_validates_and_carries_what_apps_need(validator: jsonschema.Draft202012Validator) -> None:
    catalog = build_catalog(matrix_1b_entries())
    assert_valid(validator, catalog)
    bundles = by_file(catalog)
    assert len(bundles) == 13  # 8 CPU files (shared with iOS) + 3 Android GPU files (GPU layout) + 2 web files
    q8 = bundles["Gemma3-1B-IT_multi-prefill-seq_q8_ekv1280.task"]
    assert q8["targets"] == ["android-cpu", "ios"]
    assert q8["platforms"] == ["android", "ios"] and q8["backends"] == ["cpu", "gpu"]  # iOS: Metal
    gpu_q8 = bundles["Gemma3-1B-IT_multi-prefill-seq_q8_ekv1280_gpu.task"]
    assert gpu_q8["targets"] == ["android-gpu"] and gpu_q8["backends"] == ["gpu"]
    assert q8["quantization"] == {
        "recipe": "dynamic_int8",
        "weights": "int8",
        "granularity": "per-channel",
        "embedding": "int8",
        "activations": "float32",
    }
    assert q8["prefill_lengths"] == [32, 128, 512, 1280] and q8["ekv"] == 1280
    assert q8["precision"]["web"] is None
    # Hand-computed: KV 2*26*1*256*1280*4 (this file also serves the GPU and iOS: full-length local caches);
    # weight cache: int8 (1536*1152 + 1152*1024 + 2*6912*1152 + 1152*6912) * 26 + 262144*1152 (tied LM head), plus
    # 8 bytes per output channel ((1536 + 1152 + 2*6912 + 1152) * 26 + 262144); first launch: the packed LM head
    # again; activations (4*1280*1280 + 1280*1280 + 2*1280*6912 + 4*1280*1152 + 1280*256*6 + 262144) * 4; the
    # runtime's own 128 MiB. CPU: no bundle bytes (it runs from the packed copy); GPU: the bundle, float16 KV.
    # minimum = ceil(2 * the larger of the two (float32 KV) / GiB) GiB.
    weight_cache = (1536 * 1152 + 1152 * 1024 + 2 * 6912 * 1152 + 1152 * 6912) * 26 + 262144 * 1152 + 8 * (
        (1536 + 1152 + 2 * 6912 + 1152) * 26 + 262144)
    assert weight_cache == 1_005_522_944
    head = 262144 * 1152 + 8 * 262144
    cpu = weight_cache + head + 68_157_440 + 136_052_736 + 128 * MIB
    gpu = 1005 * MIB + 68_157_440 // 2 + 136_052_736 + 128 * MIB
    assert q8["memory"] == {
        "weights_bytes": 1005 * MIB,
        "weight_cache_bytes": weight_cache,
        "first_launch_bytes": head,
        "runtime_resident_bytes": 128 * MIB,
        "kv_cache_bytes": 68_157_440,
        "kv_cache_dtype": "float32",
        "kv_cache": {"window_sized_local_layers": False, "local_layers": 22, "local_layer_tokens": 1280,
                     "global_layers": 4, "global_layer_tokens": 1280, "token_slots": 26 * 1280},
        "activations_bytes": 136_052_736,
        "estimated_runtime_bytes": cpu,
        "min_device_memory_bytes": 4 * GIB,
        "backends": {
            "cpu": {"kv_cache_dtype": "float32", "kv_cache_bytes": 68_157_440, "weight_cache_bytes": weight_cache,
                    "resident_weights_bytes": 0, "estimated_runtime_bytes": cpu},
            "gpu": {"kv_cache_dtype": "float16", "kv_cache_bytes": 68_157_440 // 2, "weight_cache_bytes": 0,
                    "resident_weights_bytes": 1005 * MIB, "estimated_runtime_bytes": gpu},
        },
    }
    assert q8["chat"]["instruction_tuned"] is True
    assert q8["chat"]["single_turn"] == "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
    assert q8["chat"]["stop_tokens"] == ["<eos>", "<end_of_turn>"] and q8["chat"]["start_token"] == "<bos>"
    assert q8["source"]["checkpoint"] == "hf:google/gemma-3-1b-it"

    int4 = bundles["gemma3-1b-it-int4.task"]
    assert int4["ekv"] == 2048 and int4["memory"]["kv_cache_bytes"] == 109_051_904
    assert int4["memory"]["min_device_memory_bytes"] == 2 * GIB, int4["memory"]["estimated_runtime_bytes"]
    f32 = bundles["Gemma3-1B-IT_multi-prefill-seq_f32_ekv1280.task"]["memory"]
    assert f32["weight_cache_bytes"] == 3_999_006_720 and f32["min_device_memory_bytes"] == 11 * GIB
    # android-cpu-only files get window-sized local caches: 22 * 512 + 4 * 4096 token slots at ekv 4096
    q4_4096 = bundles["Gemma3-1B-IT_multi-prefill-seq_q4_block32_ekv4096.task"]["memory"]
    assert q4_4096["kv_cache"]["window_sized_local_layers"] is True and q4_4096["kv_cache"]["token_slots"] == 27_648
    assert q4_4096["kv_cache_bytes"] == 2 * 27_648 * 256 * 4 and set(q4_4096["backends"]) == {"cpu"}
    # the CPU file is android-cpu's alone (the GPU target has its own, GPU-layout file): window-sized local caches;
    # the GPU file keeps full caches, 3.2x the ekv1280 cache
    long_context = bundles["Gemma3-1B-IT_multi-prefill-seq_q8_ekv4096.task"]
    assert long_context["memory"]["kv_cache_bytes"] == 2 * 27_648 * 256 * 4 and long_context["targets"] == ["android-cpu"]
    gpu_context = bundles["Gemma3-1B-IT_multi-prefill-seq_q8_ekv4096_gpu.task"]["memory"]
    assert gpu_context["kv_cache"]["window_sized_local_layers"] is False and gpu_context["kv_cache_bytes"] == 218_103_808
    assert bundles["Gemma3-1B-IT_multi-prefill-seq_q8_ekv4096_gpu.task"]["targets"] == ["android-gpu"]

    for name in ("gemma3-1b-it-int8-web.task", "gemma3-1b-it-int4-web.task"):
        web = bundles[name]
        assert web["targets"] == ["web-gpu"] and web["platforms"] == ["web"] and web["backends"] == ["gpu"]
        assert web["precision"]["web"]["shader_f16"] == "optional" and web["precision"]["web"]["f32_fallback"] is True
    assert bundles["gemma3-1b-it-int4-web.task"]["quantization"]["granularity"] == "block-32"


def test_270m_catalog_validates(validator: jsonschema.Draft202012Validator) -> None:
    catalog = build_catalog(defaults_270m_entries())
    assert_valid(validator, catalog)
    bundles = by_file(catalog)
    assert set(bundles) == {
        "Gemma3-270M_multi-prefill-seq_q8_ekv1024.task",
        "Gemma3-270M_multi-prefill-seq_q8_ekv1024.litertlm",
        "Gemma3-270M_multi-prefill-seq_q4_block32_gptq_down8_ekv1024.task",
    }
    q8 = bundles["Gemma3-270M_multi-prefill-seq_q8_ekv1024.task"]
    # android-cpu: 15 sliding-window layers of 512 tokens, 3 global ones of ekv 1024 (full: 2*18*256*1024*4)
    assert q8["memory"]["kv_cache_bytes"] == 2 * (15 * 512 + 3 * 1024) * 1 * 256 * 4 == 22_020_096
    assert q8["memory"]["min_device_memory_bytes"] == 2 * GIB
    assert q8["runtimes"] == ["mediapipe-llm-inference", "litert-lm"]
    assert bundles["Gemma3-270M_multi-prefill-seq_q8_ekv1024.litertlm"]["runtimes"] == ["litert-lm"]
    assert q8["chat"]["instruction_tuned"] is False and q8["chat"]["single_turn"] == "{prompt}"
    assert q8["model"]["parameters"] == GEMMA3_270M.parameter_count
    block32 = bundles["Gemma3-270M_multi-prefill-seq_q4_block32_gptq_down8_ekv1024.task"]
    assert block32["quantization"]["recipe"] == "dynamic_int4_block32_gptq_down8"
    assert block32["quantization"]["int8_projections"] == ["down"]
    assert "int8_projections" not in q8["quantization"]
    assert block32["quantization"]["weights"] == "int4" and block32["quantization"]["embedding"] == "int8"
    assert block32["quantization"]["granularity"] == "block-32"
    assert block32["memory"]["estimated_runtime_bytes"] < q8["memory"]["estimated_runtime_bytes"]


@pytest.mark.parametrize("window", [True, False])
def test_kv_cache_estimate_matches_the_tensors_of_a_real_bundle(
    tiny_bundle_dir: Path, tiny_window_bundle_dir: Path, window: bool
) -> None:
    """The estimate's formula (float32, the token slots of each layer: window-sized for the local layer of the
    window-cache bundle, ekv for every layer of the other) against the KV-cache inputs litert-torch exported."""
    tiny_bundle_dir = tiny_window_bundle_dir if window else tiny_bundle_dir
    from ai_edge_litert.interpreter import Interpreter

    entry = next(e for e in load_manifest(tiny_bundle_dir).bundles if e.format == "task")
    with zipfile.ZipFile(tiny_bundle_dir / entry.file) as archive:
        interpreter = Interpreter(model_content=archive.read("TF_LITE_PREFILL_DECODE"))
    decode = interpreter.get_signature_runner("decode").get_input_details()
    kv_inputs = {name: d for name, d in decode.items() if name.startswith("kv_cache_")}
    assert kv_inputs, f"no kv_cache_* inputs in {sorted(decode)}"
    assert {d["dtype"].__name__ for d in kv_inputs.values()} == {"float32"}
    real = sum(int(d["shape"].prod()) * d["dtype"]().itemsize for d in kv_inputs.values())
    catalog = build_catalog([entry])
    memory = catalog["bundles"][0]["memory"]
    assert memory["kv_cache_bytes"] == real
    assert memory["kv_cache"]["window_sized_local_layers"] is window
    assert memory["kv_cache"]["token_slots"] == sum(int(d["shape"].prod()) for n, d in kv_inputs.items()
                                                    if n.startswith("kv_cache_k_")) // 32  # head_dim 32, 1 KV head
    assert kv_layout(GEMMA3_1B, 1280, False).bytes(GEMMA3_1B) == 68_157_440
    assert kv_layout(GEMMA3_1B, 4096, True).slots == 22 * 512 + 4 * 4096 == 27_648  # issue 22's count


# ---- the tiny bundles built by the real pipeline, the CLI, and the server ----


def test_cli_writes_a_valid_catalog_next_to_the_bundles(
    tiny_bundle_dir: Path, tmp_path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    folder = tmp_path / "bundles"
    make_serving_dir(tiny_bundle_dir, folder)
    manifest = load_manifest(folder)
    result = subprocess.run(
        [sys.executable, "-m", "sdk_build", "catalog", "--bundles", str(folder)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    catalog = json.loads((folder / CATALOG_NAME).read_text())
    assert_valid(validator, catalog)
    assert sorted(p.name for p in folder.iterdir() if "partial" in p.name) == []  # written atomically
    for entry in manifest.bundles:
        bundle = by_file(catalog)[entry.file]
        assert (bundle["bytes"], bundle["sha256"], bundle["ekv"]) == (entry.bytes, entry.sha256, entry.ekv)
        assert bundle["url"] == entry.file  # relative to catalog.json itself
        assert bundle["memory"]["weights_bytes"] == entry.bytes
    task = by_file(catalog)[next(e.file for e in manifest.bundles if e.format == "task" and e.instruction_tuned)]
    assert task["chat"]["prompt_template"]["user_prefix"] == "<start_of_turn>user\n"
    assert task["source"]["checkpoint"].startswith("local:")  # no builder's paths in a public catalog
    assert str(tiny_bundle_dir) not in json.dumps(catalog)


def test_catalog_of_an_entry_without_a_shape_says_what_to_do(tiny_bundle_dir: Path) -> None:
    entry = next(e for e in load_manifest(tiny_bundle_dir).bundles)
    entry.extra.pop("model_shape", None)
    with pytest.raises(CatalogError, match="no known shape.*rebuild it"):
        build_catalog([entry])


@pytest.fixture(scope="module")
def served(tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_serving_dir(tiny_bundle_dir, tmp_path_factory.mktemp("catalog-http") / "bundles")


@pytest.fixture(scope="module")
def server(served: dict[str, Any]) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": served["secret"].parent / "bundles"}) as live:
        yield live


def test_api_catalog_validates_and_its_urls_download_the_right_bytes(
    server: LiveServer, served: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    with urllib.request.urlopen(server.base_url + "/api/catalog", timeout=30) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        catalog = json.load(response)
    assert_valid(validator, catalog)
    bundles = by_file(catalog)
    assert served["task"] in bundles and served["missing"] not in bundles
    assert {
        "file": served["missing"],
        "reason": f"{served['missing']} is listed in the manifest but missing on disk; rebuild it",
    } in catalog["omitted"]
    for bundle in bundles.values():
        assert bundle["url"] == "/bundles/" + bundle["file"]  # server-relative
        url = urllib.parse.urljoin(server.base_url + "/api/catalog", bundle["url"])
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
        assert len(data) == bundle["bytes"] and hashlib.sha256(data).hexdigest() == bundle["sha256"]
    with urllib.request.urlopen(server.base_url + "/api/catalog/schema", timeout=30) as response:
        assert json.load(response) == json.loads(SCHEMA_FILE.read_text())


# ---- reading catalogs ----


def test_reader_refuses_unknown_versions_unsafe_names_and_bad_hashes() -> None:
    catalog = build_catalog(defaults_270m_entries())
    assert len(parse_catalog(catalog, "t")) == 3
    with pytest.raises(CatalogError, match="gemma-edge.catalog/2 catalog; this sdk-build reads gemma-edge.catalog/1"):
        parse_catalog({**catalog, "schema": "gemma-edge.catalog/2"}, "t")
    with pytest.raises(CatalogError, match="not a gemma-edge catalog"):
        parse_catalog({"bundles": []}, "t")
    for bad_name in ("../escape.task", "sub/dir.task", ".hidden.task", ""):
        bad = json.loads(json.dumps(catalog))
        bad["bundles"][0]["file"] = bad_name
        with pytest.raises(CatalogError, match="not a plain file name"):
            parse_catalog(bad, "t")
    bad = json.loads(json.dumps(catalog))
    bad["bundles"][0]["sha256"] = "abc"
    with pytest.raises(CatalogError, match="64 hex digits"):
        parse_catalog(bad, "t")
    bad = json.loads(json.dumps(catalog))
    del bad["bundles"][1]["bytes"]
    with pytest.raises(CatalogError, match="lacks 'bytes'"):
        parse_catalog(bad, "t")


def test_selection_by_target_quantization_ekv_and_the_error_when_nothing_matches() -> None:
    bundles = parse_catalog(build_catalog(matrix_1b_entries()), "1b")
    ios = select(bundles, Selection(target="ios"))
    assert {b.file for b in ios} == {"gemma3-1b-it-int4.task", "Gemma3-1B-IT_multi-prefill-seq_q8_ekv1280.task"}
    chosen = select(bundles, Selection(target="android-cpu", quantization="dynamic_int4_block32", ekv=4096))
    assert [b.file for b in chosen] == ["Gemma3-1B-IT_multi-prefill-seq_q4_block32_ekv4096.task"]
    web = {b.file for b in select(bundles, Selection(target="web-gpu"))}
    assert web == {"gemma3-1b-it-int8-web.task", "gemma3-1b-it-int4-web.task"}
    with pytest.raises(
        CatalogError,
        match=r"no bundle in the catalog matches target=ios ekv=4096; .*ekv \[1280, 2048, "
        r"4096\]",
    ):
        select(bundles, Selection(target="ios", ekv=4096))


def test_write_catalog_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no manifest.json entries"):
        write_catalog(tmp_path)


def test_lora_bundles_say_how_without_the_builders_paths(validator: jsonschema.Draft202012Validator) -> None:
    entry = defaults_270m_entries()[0]
    runtime = BundleEntry(**{**entry.to_dict(), "lora": {"mode": "runtime", "rank": 16, "source": "/home/me/adapter"}})
    catalog = build_catalog([runtime])
    assert_valid(validator, catalog)
    assert catalog["bundles"][0]["lora"] == {"mode": "runtime", "rank": 16}
    assert "/home/me" not in json.dumps(catalog)
    assert "lora" not in build_catalog([entry])["bundles"][0]
