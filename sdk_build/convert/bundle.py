"""Bundle stage: package a `.tflite` + tokenizer as a MediaPipe `.task` or a LiteRT-LM `.litertlm`.

`.task` goes through mediapipe's genai bundler (mediapipe<1: 1.x dropped it); `.litertlm` through
litert-lm's builder. Both get Gemma's start/stop tokens and, for instruction-tuned checkpoints, its chat
template, so the runtimes format prompts themselves. Both are reproducible: the same inputs give the same bytes
(sdk_build/system/reproducible.py: no build time, no random id inside), `identity` naming those inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sdk_build.errors import BuildError
from sdk_build.spec import BundleFormat
from sdk_build.system.atomic import atomic_path
from sdk_build.system.leftovers import work_dir
from sdk_build.system.reproducible import deterministic_litertlm_metadata, normalize_zip_times

START_TOKEN = "<bos>"
STOP_TOKENS = ("<eos>", "<end_of_turn>")


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """Gemma's turn markup; empty for pretrained models, which take raw text."""

    user_prefix: str = ""
    user_suffix: str = ""
    model_prefix: str = ""
    model_suffix: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


GEMMA_CHAT_TEMPLATE = PromptTemplate(
    user_prefix="<start_of_turn>user\n",
    user_suffix="<end_of_turn>\n",
    model_prefix="<start_of_turn>model\n",
    model_suffix="<end_of_turn>\n",
)


def prompt_template(instruction_tuned: bool) -> PromptTemplate:
    return GEMMA_CHAT_TEMPLATE if instruction_tuned else PromptTemplate()


# LiteRT-LM's Conversation API (the one @litert-lm/core streams answers through, and what its Kotlin and Python
# apps use) renders messages with the bundle's Jinja template; a gemma3 bundle without one gets Gemma's chat
# template, which would wrap a pretrained model's raw text in user/model turns. Pretrained bundles therefore carry
# a template that passes the text through unchanged (the runtime adds the start token itself).
RAW_TEXT_JINJA = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
)


LITERTLM_LAYOUT = 2
"""Bumped when write_litertlm writes something new into the file (2: the pass-through template), so bundles
built before are rebuilt (it is part of their spec fingerprint). Web-gpu bundles keep LiteRT-LM's default float16
activations: the GPU targets' export is F16-safe (sdk_build/gpu/f16.py), which is what made the real 270M answer in
F16 on lavapipe and on an NVIDIA GPU (docs/benchmarks.md#gpu)."""


def litertlm_jinja_template(template: PromptTemplate) -> str | None:
    """The Jinja template a `.litertlm` carries: raw text for pretrained models, the runtime's own Gemma one otherwise."""
    return None if (template.user_prefix or template.model_prefix) else RAW_TEXT_JINJA


def write_task(tflite: Path, tokenizer: Path, template: PromptTemplate, destination: Path) -> Path:
    from mediapipe.tasks.python.genai.bundler import llm_bundler

    with atomic_path(destination) as tmp:
        config = llm_bundler.BundleConfig(
            tflite_model=str(tflite),
            tokenizer_model=str(tokenizer),
            start_token=START_TOKEN,
            stop_tokens=list(STOP_TOKENS),
            output_filename=str(tmp),
            prompt_prefix_user=template.user_prefix or None,
            prompt_suffix_user=template.user_suffix or None,
            prompt_prefix_model=template.model_prefix or None,
            prompt_suffix_model=template.model_suffix or None,
        )
        llm_bundler.create_bundle(config)
        _check_task(tmp)
        normalize_zip_times(tmp)
    return destination


def _check_task(path: Path) -> None:
    """A `.task` is 4 zero bytes then a zip; LiteRT-LM and the web loader both rely on that layout."""
    import zipfile

    with open(path, "rb") as handle:
        head = handle.read(4)
    if head != b"\x00\x00\x00\x00":
        raise BuildError(f"the bundler wrote {path.name} without the 4-byte .task header; mediapipe version mismatch?")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if not {"TF_LITE_PREFILL_DECODE", "TOKENIZER_MODEL"} <= names:
        raise BuildError(f"{path.name} lacks TF_LITE_PREFILL_DECODE/TOKENIZER_MODEL (has {sorted(names)})")


def write_litertlm(
    tflite: Path, tokenizer: Path, template: PromptTemplate, ekv: int, destination: Path, identity: str
) -> Path:
    from litert_torch.generative.utilities import litertlm_builder

    with work_dir(destination.parent, ".litertlm-") as work, deterministic_litertlm_metadata(identity):
        staged = work / (destination.stem + ".tflite")
        staged.symlink_to(tflite.resolve())
        litertlm_builder.build_litertlm(
            tflite_model_path=str(staged),
            workdir=str(work),
            output_path=str(work),
            context_length=ekv,
            tokenizer_model_path=str(tokenizer),
            start_token=START_TOKEN,
            stop_tokens=list(STOP_TOKENS),
            user_prompt_prefix=template.user_prefix or None,
            user_prompt_suffix=template.user_suffix or None,
            model_prompt_prefix=template.model_prefix or None,
            model_prompt_suffix=template.model_suffix or None,
            llm_model_type="gemma3",
            jinja_prompt_template=litertlm_jinja_template(template),
        )
        built = work / (destination.stem + ".litertlm")
        with atomic_path(destination) as tmp:
            built.replace(tmp)
    return destination


def write_bundle(
    fmt: BundleFormat, tflite: Path, tokenizer: Path, template: PromptTemplate, ekv: int, destination: Path,
    identity: str,
) -> Path:
    """Write the `fmt` bundle to `destination`; `identity` names the build's inputs (its spec fingerprint)."""
    if fmt is BundleFormat.TASK:
        return write_task(tflite, tokenizer, template, destination)
    return write_litertlm(tflite, tokenizer, template, ekv, destination, identity)
