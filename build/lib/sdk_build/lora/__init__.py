"""LoRA adapters (Hugging Face PEFT folders) in bundles: validated against the model's shape, then either fused
into the weights before conversion (`fuse`) or kept for runtimes that load adapters separately (`litert_lora`,
`signatures`, `litert_decoder`). `build.build_with_lora` is what `sdk_build.pipeline.build(lora=...)` runs."""
