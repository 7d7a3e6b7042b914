"""Convert: a checkpoint becomes a bundle. Float export (litert-torch), quantization (ai-edge-quantizer), KV-cache layouts, and the bundlers (MediaPipe .task, LiteRT-LM .litertlm)."""
