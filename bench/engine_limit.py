"""The engine limit: the plain ONNX Runtime GenAI loop, in this process, with no server around it.

At concurrency c it runs the requests as static batches of c (all arriving together), which is the best aggregate
throughput the engine offers on its own; at c = 1 it is the plain single-stream loop. Timings use the same clock and
the same definitions as the HTTP client (bench/clients.py), and the same chat template as the chat service.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime_genai as og
from ortserve_testing.plain_engine import PlainGenerator

from bench.clients import Phase, StreamRecord


class EngineLimit:
    def __init__(self, model_path: Path, threads: int) -> None:
        self.plain = PlainGenerator(model_path, threads=threads)
        self.eos = set(int(t) for t in self.plain.tokenizer.eos_token_ids)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self.plain.encode(self.plain.chat_prompt(messages)))

    def static_batch(self, conversations: list[list[dict[str, str]]], max_tokens: int) -> list[StreamRecord]:
        """Greedy decode of one static batch; a row ends at EOS or max_tokens, the batch when every row has."""
        sent = time.perf_counter()
        prompts = [self.plain.chat_prompt(messages) for messages in conversations]
        rows = len(prompts)
        if rows == 1:
            ids = np.asarray([self.plain.encode(prompts[0])], dtype=np.int32)
        else:
            ids = self.plain.tokenizer.encode_batch(prompts).as_numpy().astype(np.int32)  # right-padded
        params = og.GeneratorParams(self.plain.model)
        params.set_search_options(batch_size=rows, max_length=ids.shape[1] + max_tokens, do_sample=False)
        generator = og.Generator(self.plain.model, params)
        generator.append_tokens(ids)
        records = [StreamRecord(sent=sent) for _ in range(rows)]
        for record, prompt in zip(records, prompts, strict=True):
            record.prompt_tokens = len(self.plain.encode(prompt)) if rows > 1 else ids.shape[1]
        active = set(range(rows))
        while active and not generator.is_done():
            generator.generate_next_token()
            now = time.perf_counter()
            tokens = generator.get_next_tokens()
            for row in list(active):
                record = records[row]
                record.first = record.first or now
                record.completion_tokens += 1  # EOS counts, as the chat service counts it
                record.end = now
                if int(tokens[row]) in self.eos or record.completion_tokens >= max_tokens:
                    active.discard(row)
        return records

    def closed_loop(self, conversations: list[list[dict[str, str]]], concurrency: int, max_tokens: int) -> Phase:
        phase = Phase()
        start = time.perf_counter()
        for i in range(0, len(conversations), concurrency):
            phase.records += self.static_batch(conversations[i : i + concurrency], max_tokens)
        phase.seconds = time.perf_counter() - start
        return phase
