"""The orchestrator: the product's public door, its worker, CLI and the local Triton launcher."""
