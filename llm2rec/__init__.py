"""llm2rec: LLM2Rec (He et al., KDD 2025) as a library and a command."""

__version__ = "0.1.0"

__all__ = ["Encoder", "__version__"]


def __getattr__(name: str):
    # Lazy: `import llm2rec` must stay light (no torch/transformers) for the CLI and for tools.
    if name == "Encoder":
        from llm2rec.encoder import Encoder

        return Encoder
    raise AttributeError(f"module 'llm2rec' has no attribute {name!r}")
