"""llm2rec: LLM2Rec (He et al., KDD 2025) as a library and a command."""

__version__ = "0.1.0"
