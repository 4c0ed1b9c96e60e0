"""``llm2rec embed`` as a launcher's worker, with three test hooks (not part of llm2rec):

- ``LLM2REC_TEST_ENCODE_LOG``: every shard a process starts to encode is appended there as
  ``RANK SHARD``, so a test sees which shards a run recomputed;
- ``LLM2REC_TEST_DIE_AT=RANK:SHARD``: that process kills itself (SIGKILL, as a lost node dies) when it is
  about to encode that shard, after the shards it finished before;
- ``LLM2REC_TEST_MERGE_SNAPSHOT``: process 0 writes ``{shard file: mtime_ns}`` there just before it merges
  (the work directory is gone afterwards).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/embed/embed_worker.py embed ...
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from llm2rec.embed import extract

_encode_shard, _merge_shards = extract._encode_shard, extract.merge_shards


def _hooked_encode(encoder, items, work, shard, settings, bar):
    rank = os.environ.get("RANK", "0")
    if os.environ.get("LLM2REC_TEST_ENCODE_LOG"):
        with open(os.environ["LLM2REC_TEST_ENCODE_LOG"], "a") as fh:
            fh.write(f"{rank} {shard.index}\n")
    if os.environ.get("LLM2REC_TEST_DIE_AT") == f"{rank}:{shard.index}":
        os.kill(os.getpid(), signal.SIGKILL)
    return _encode_shard(encoder, items, work, shard, settings, bar)


def _hooked_merge(work, shards, *args, **kwargs):
    if os.environ.get("LLM2REC_TEST_MERGE_SNAPSHOT"):
        files = sorted(p for p in Path(work).glob("shard-*"))
        snapshot = {p.name: p.stat().st_mtime_ns for p in files}
        Path(os.environ["LLM2REC_TEST_MERGE_SNAPSHOT"]).write_text(json.dumps(snapshot))
    return _merge_shards(work, shards, *args, **kwargs)


if __name__ == "__main__":
    extract._encode_shard = _hooked_encode
    extract.merge_shards = _hooked_merge
    from llm2rec.cli import main

    sys.argv = ["llm2rec", *sys.argv[1:]]
    main()
