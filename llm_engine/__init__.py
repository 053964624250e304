"""Text generation for the `llm` Triton model: engines, sampling, continuous batching.

The scheduler is engine-agnostic: it admits requests at decode-step boundaries, prefills long
prompts in chunks, samples each sequence with its own settings and streams text through
callbacks. Engines (llama.cpp, transformers) only run forward passes over a step's tokens.
"""
