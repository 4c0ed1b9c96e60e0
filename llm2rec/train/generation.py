"""The CSFT sanity metric: greedy next-title generation on validation pairs, scored against the target and
the catalogue (exact match, in catalogue, token F1, grounded hit; see :mod:`llm2rec.train.title_match`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from llm2rec.io import atomic_write_json
from llm2rec.train.csft_data import CSFTCollator, CSFTPair, format_prompt
from llm2rec.train.title_match import TitleIndex, token_f1

log = logging.getLogger(__name__)


@torch.no_grad()
def generation_metrics(model, tokenizer, pairs: list[CSFTPair], catalogue: TitleIndex, config) -> dict:
    """Greedy next-title generation over ``pairs``: exact-match and in-catalogue rates of the generated
    title (text up to the first newline), the graded token F1 and grounded-hit rates (see
    :mod:`llm2rec.train.title_match`), and the rate of generations that end within ``max_new_tokens``."""
    if not pairs:
        return {}
    model.eval()
    device = next(model.parameters()).device
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    stop_ids = [tokenizer.eos_token_id] + (newline if len(newline) == 1 else [])
    prompt_room = max(config.max_length - config.max_new_tokens, 1)
    exact = in_catalogue = ended = grounded = empty = 0
    f1 = 0.0
    examples = []
    for start in range(0, len(pairs), config.generation_batch):
        chunk = pairs[start : start + config.generation_batch]
        prompts = [
            tokenizer(format_prompt(p.history_titles, config), add_special_tokens=False)["input_ids"][
                -prompt_room:
            ]
            for p in chunk
        ]
        batch = CSFTCollator(tokenizer.pad_token_id, None)(
            [{"input_ids": ids, "labels": ids, "prompt_len": len(ids)} for ids in prompts]
        )
        out = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=config.max_new_tokens,
            # An empty title is never an answer. With the paper's prompt (no separator before the target)
            # the model cannot tell that the last history title is finished and often "ends" it with
            # "\n" at once; asking for at least one token makes it name an item instead.
            min_new_tokens=1,
            do_sample=False,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        # A title that ends (newline / EOS) within the budget: the output format has been learned.
        ended += int(torch.isin(new_tokens, torch.tensor(stop_ids, device=new_tokens.device)).any(-1).sum())
        for pair, text in zip(chunk, texts, strict=True):
            title = text.split("\n", 1)[0].strip()
            target = pair.target_title.strip()
            exact += title == target
            in_catalogue += title in catalogue
            f1 += token_f1(title, target)
            grounded += catalogue.nearest(title) == target
            empty += not title
            if len(examples) < 5:
                examples.append({"target": pair.target_title, "generated": title})
    return {
        "exact_match": exact / len(pairs),
        "in_catalogue": in_catalogue / len(pairs),
        "token_f1": f1 / len(pairs),
        "grounded_hit": grounded / len(pairs),
        "empty": empty / len(pairs),
        "ended": ended / len(pairs),
        "samples": len(pairs),
        "examples": examples,
    }


def generation_on_main(
    load_model, tokenizer, pairs, catalogue, config, state, cache: Path | None = None
) -> dict:
    """The sanity metric, computed by process 0 only (others get ``{}``); ``cache`` spares a resumed run
    from generating the "before" numbers again."""
    if not pairs or not state.is_main_process:
        return {}
    if cache is not None and cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    metrics = generation_metrics(load_model(), tokenizer, pairs, catalogue, config)
    log.info(
        "generation sanity: exact match %.3f, in catalogue %.3f, token F1 %.3f, grounded hit %.3f, "
        "empty %.3f (%d samples)",
        metrics["exact_match"],
        metrics["in_catalogue"],
        metrics["token_f1"],
        metrics["grounded_hit"],
        metrics["empty"],
        metrics["samples"],
    )
    if cache is not None:
        atomic_write_json(cache, metrics)
    return metrics
