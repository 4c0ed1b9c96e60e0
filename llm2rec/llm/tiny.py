"""Tiny, randomly initialised Llama / Qwen2 models and tokenizers built in-process, for tests.

Nothing here touches a model hub: the tokenizer is a byte-level BPE trained in a few milliseconds on a
small built-in corpus of product-like titles, so it can encode any text (bytes never map to unk) and
round-trips through ``save_pretrained`` / ``AutoTokenizer.from_pretrained`` like a real one.
"""

from __future__ import annotations

from typing import Literal

EOS = "<|endoftext|>"
UNK = "<unk>"
BOS = "<s>"

# Product-title-like text so frequent merges look like the titles tests feed in.
_CORPUS = """
The Legend of Zelda Breath of the Wild Nintendo Switch, Super Mario Odyssey, Mario Kart 8 Deluxe
Acrylic Paint Set 24 Colors, Watercolor Brush Pens, Sketch Book for Drawing 100 Sheets
Digital Caliper Stainless Steel 6 inch, Laboratory Glass Beaker Set 50 ml 100 ml 250 ml
Safety Goggles Anti Fog, Nitrile Gloves Large Box of 100, pH Test Strips Universal 1-14
Microscope Slides Prepared Set of 25, Magnetic Stirrer with Stir Bar, Pipette Tips 200 ul
Harry Potter and the Sorcerer's Stone, The Hobbit, Pride and Prejudice, War and Peace
Wireless Bluetooth Headphones, USB C Charger Cable 6 ft, Portable Power Bank 10000 mAh
Kitchen Knife Set with Block, Non Stick Frying Pan 12 inch, Coffee Maker 12 Cup Programmable
the a of and for with in on to by from set pack new black white red blue green large small
""".strip()


def make_tiny_tokenizer(vocab_size: int = 512, *, add_bos: bool = False):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with eos, pad (= eos) and unk tokens.

    ``add_bos``: like Llama / Mistral / Gemma tokenizers, it also has a BOS token (``<s>``) and puts it in
    front of every text it encodes (the default one adds no special token, like Qwen2 and SmolLM2).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, UNK, BOS] if add_bos else [EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    bos = {}
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
        )
        bos = {"bos_token": BOS, "add_bos_token": True}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=UNK,
        padding_side="left",
        model_max_length=4096,
        **bos,
    )


def make_tiny_model(
    arch: Literal["llama", "qwen2"] = "llama",
    tokenizer=None,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    **config_kwargs,
):
    """A randomly initialised ``LlamaForCausalLM`` or ``Qwen2ForCausalLM`` whose vocabulary matches ``tokenizer``.

    The same ``seed`` always gives the same weights, without disturbing the caller's global RNG.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    tokenizer = tokenizer if tokenizer is not None else make_tiny_tokenizer()
    config_cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}.get(arch)
    if config_cls is None:
        raise ValueError(f"unknown tiny architecture {arch!r}; expected 'llama' or 'qwen2'")
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,  # like SmolLM2 and Qwen2-0.5B
    )
    settings.update(config_kwargs)
    config = config_cls(**settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    return model.float()
