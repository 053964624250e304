"""Training, ONNX export, quantization and model-repository writing for ticket triage."""
