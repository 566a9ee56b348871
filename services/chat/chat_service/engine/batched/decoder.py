"""The GenAI-built decoder graph run directly on onnxruntime, batch rows in KV slots.

The builder's graph (GroupQueryAttention with rotary inside, no position_ids) needs only each attention-mask row's
sum and the mask's width: a row's position is its own length, so rows of different lengths decode together.
A prefill with past tokens present must run at batch 1, hence: prefill new rows, then decode all rows.

The graph runs as gathered_logits.py rewrites it when it opens: logits only at the positions each call reads (a
prefill's or a chunk's last, a decode row's one, a verify's every position), so a prompt chunk neither runs the lm_head
on nor returns logits for every position. A graph the rewrite does not fit runs as built, with the same results.
A tied embedding gathers its rows from the weight file rather than from a folded copy of the table (file_table.py).
With `kv_dtype` float16 the attention keeps its KV in float16 (half_kv.py); the cache takes the type the session's
past inputs have, so a graph that edit does not fit runs with a float32 cache.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from chat_service.engine.batched.file_table import gather_from_file
from chat_service.engine.batched.gathered_logits import (
    EXTERNAL_DATA_FOLDER_KEY,
    POSITIONS_INPUT,
    VariantUnavailable,
    gathered_logits_model,
    read_graph,
)
from chat_service.engine.batched.graph import input_names
from chat_service.engine.batched.half_kv import half_kv_model
from chat_service.engine.batched.kv_cache import SlotKVCache
from chat_service.engine.batched.weight_pages import release_weight_pages

logger = logging.getLogger(__name__)

# What onnxruntime raises when it refuses a graph (its exception classes share no base but Exception).
ORT_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidGraph,
    ort_errors.InvalidArgument,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


def float_type(arg: ort.NodeArg) -> np.dtype:
    """The numpy type of a graph input or output that is float16 or float32 (the KV, the logits)."""
    return np.dtype(np.float16 if arg.type == "tensor(float16)" else np.float32)


class OnnxDecoder:
    def __init__(
        self,
        model_path: Path,
        genai_config: dict[str, Any],
        threads: int,
        slots: int,
        max_len: int,
        session_entries: Mapping[str, str] | None = None,
        gather_logits: bool = True,
        release_weight_file: bool = True,
        gather_from_weight_file: bool = True,
        kv_dtype: str = "float32",
    ) -> None:
        """`genai_config` must have passed check_batched_graph: the graph's inputs are not checked again here.
        `session_entries`: onnxruntime session config entries (the thread spinning policy, engine/spinning.py).
        `gather_logits` False runs the graph as built (every position's logits), as does a graph the edit does not
        fit (logged). `release_weight_file` gives back the weight file's pages the session keeps mapped
        (weight_pages.py); `released_bytes` says how many were resident. `gather_from_weight_file` False keeps a
        tied embedding's folded copy of its table (file_table.py), the "before" of its test. `kv_dtype`: "float32"
        (the graph's own) or "float16" (half_kv.py)."""
        decoder = genai_config["model"]["decoder"]
        outputs = decoder.get("outputs", {})
        self._logits = outputs.get("logits", "logits")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Without the arena, a call's activations (and, on the full graph, a prefill's logits for every position)
        # go back to the system when freed instead of staying reserved: 130 MB less RSS after 8 Qwen2.5-0.5B streams
        # at the same speed (measured on the full graph, bench/memory.py).
        options.enable_cpu_mem_arena = False
        for key, value in (session_entries or {}).items():
            options.add_session_config_entry(key, value)
        self.layers = int(decoder["num_hidden_layers"])
        self._ids, self._mask, self._past = input_names(decoder)
        self.file_tables: list[str] = []  # the Gathers that read their table from the weight file (file_table.py)
        self._gather_from_file = gather_from_weight_file
        self._half_kv = kv_dtype == "float16"
        self.session = self._open(model_path / decoder["filename"], options, gather_logits, decoder)
        self.kv_dtype = float_type(next(i for i in self.session.get_inputs() if i.name == self._past[0][0]))
        self.released_bytes = release_weight_pages(model_path) if release_weight_file else 0
        self.gathers = POSITIONS_INPUT in {i.name for i in self.session.get_inputs()}
        self._present = [
            (
                outputs.get("present_key_names", "present.%d.key") % i,
                outputs.get("present_value_names", "present.%d.value") % i,
            )
            for i in range(self.layers)
        ]
        self.cache = SlotKVCache(
            self.layers, int(decoder["num_key_value_heads"]), int(decoder["head_size"]), slots, max_len, self.kv_dtype
        )
        self.pad_id = int(genai_config["model"].get("pad_token_id") or 0)
        logits_info = next(o for o in self.session.get_outputs() if o.name == self._logits)
        vocab = logits_info.shape[-1]
        if not isinstance(vocab, int):
            vocab = int(genai_config["model"]["vocab_size"])
        dtype = float_type(logits_info)
        # Decode logits land here every step (rows 0..n-1), so a step allocates nothing and copies nothing out.
        self._step_logits = np.zeros((slots, 1, vocab), dtype)
        # A decode binding stays valid while the row count and the KV buffers do: only ids and mask are rebound.
        self._step_binding: ort.IOBinding | None = None
        self._step_key: tuple[int, int] = (0, -1)
        self._step_positions = np.zeros((0, 1), np.int64)  # bound by reference: kept alive with the binding
        # The same for a speculating row's verify calls: (slot, KV generation) → its binding, ids and mask rebound.
        self._verify_binding: ort.IOBinding | None = None
        self._verify_key: tuple[int, int] = (-1, -1)

    def session_entries(self, keys: Iterable[str]) -> dict[str, str]:
        """The config entries the open session holds among `keys` (read back from it, for the startup log)."""
        options = self.session.get_session_options()
        held = {}
        for key in keys:
            try:
                held[key] = options.get_session_config_entry(key)
            except RuntimeError:  # onnxruntime's answer for a key never set
                continue
        return held

    def _open(
        self, onnx_path: Path, options: ort.SessionOptions, gather_logits: bool, decoder: dict[str, Any]
    ) -> ort.InferenceSession:
        providers = ["CPUExecutionProvider"]
        try:
            graph = read_graph(onnx_path)
        except VariantUnavailable as exc:
            logger.warning("%s: opened as built (%s)", onnx_path, exc)
            return ort.InferenceSession(str(onnx_path), options, providers=providers)
        # From bytes there is no path to find the weight file by: it is the graph file's neighbour.
        options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, str(onnx_path.parent))
        self.file_tables = gather_from_file(graph) if self._gather_from_file else []
        if self._half_kv:
            try:
                return self._session(half_kv_model(graph), options, gather_logits, decoder)
            except (VariantUnavailable, *ORT_ERRORS) as exc:
                logger.warning(
                    "%s: the KV cache stays float32 (its float16 variant could not be made: %s)", onnx_path, exc
                )
        return self._session(graph, options, gather_logits, decoder)

    def _session(
        self, graph: onnx.ModelProto, options: ort.SessionOptions, gather_logits: bool, decoder: dict[str, Any]
    ) -> ort.InferenceSession:
        providers = ["CPUExecutionProvider"]
        if gather_logits:
            try:
                session = ort.InferenceSession(gathered_logits_model(graph, self._logits), options, providers=providers)
                self._probe(session, decoder)
                return session
            except (VariantUnavailable, *ORT_ERRORS) as exc:
                logger.warning(
                    "the lm_head runs on every position (its logits-gathering variant could not be made: %s)", exc
                )
        return ort.InferenceSession(graph.SerializeToString(), options, providers=providers)

    def _probe(self, session: ort.InferenceSession, decoder: dict[str, Any]) -> None:
        """One 3-token call (no past) asking for positions 2 and 0: a graph the rewrite fitted only in form (its lm_head
        fed something other than [batch, positions, hidden]) fails here, at startup, instead of in every request."""
        feeds: dict[str, np.ndarray] = {self._ids: np.zeros((1, 3), np.int64), self._mask: np.ones((1, 3), np.int64)}
        feeds[POSITIONS_INPUT] = np.asarray([[2, 0]], np.int64)
        types = {i.name: float_type(i) for i in session.get_inputs()}
        shape = (1, int(decoder["num_key_value_heads"]), 0, int(decoder["head_size"]))
        feeds.update({name: np.zeros(shape, types[name]) for pair in self._past for name in pair})
        (logits,) = session.run([self._logits], feeds)
        if logits.ndim != 3 or logits.shape[:2] != (1, 2):
            raise VariantUnavailable(f"a call asking for 2 positions returned logits of shape {logits.shape}")

    def _bind_cache(self, binding: ort.IOBinding, first: int, last: int) -> None:
        for (past_k, past_v), (present_k, present_v), (key, value) in zip(
            self._past, self._present, self.cache.views(first, last), strict=True
        ):
            # Same memory in and out: the attention kernel appends the new positions in place.
            binding.bind_ortvalue_input(past_k, key)
            binding.bind_ortvalue_input(past_v, value)
            binding.bind_ortvalue_output(present_k, key)
            binding.bind_ortvalue_output(present_v, value)

    def _run(
        self, input_ids: np.ndarray, mask: np.ndarray, first: int, last: int, positions: np.ndarray | None = None
    ) -> np.ndarray:
        """Logits [batch, k, vocab] at `positions` [batch, k] within the call (every position when None)."""
        if positions is None:
            positions = np.broadcast_to(np.arange(input_ids.shape[1], dtype=np.int64), input_ids.shape)
        binding = self.session.io_binding()
        binding.bind_cpu_input(self._ids, input_ids)
        binding.bind_cpu_input(self._mask, mask)
        if self.gathers:
            binding.bind_cpu_input(POSITIONS_INPUT, np.ascontiguousarray(positions, np.int64))
        self._bind_cache(binding, first, last)
        binding.bind_output(self._logits)
        self.session.run_with_iobinding(binding)
        # Outputs come back in binding order; only the logits are read (the caches are already in place).
        logits = binding.get_outputs()[-1].numpy()
        return logits if self.gathers else np.take_along_axis(logits, positions[:, :, None], axis=1)

    @staticmethod
    def _last_two(lengths: list[int]) -> np.ndarray:
        """Each row's last two positions (its only one twice for a 1-token row; [[0]] for one 1-token row).

        Why two where one is read: MLAS's int4 kernels on AVX2 take a one-row path for a single row (M = 1) that adds
        in another order than the several-row path, and the full graph ran the lm_head on every position of a
        prefill, so several rows (docs/ENGINE_DESIGNS.md, "Numerics by CPU"). Two rows keep the several-row kernel,
        which treats each row alike: the logits read are the full graph's bit for bit on every ISA, for one row of
        lm_head more."""
        if len(lengths) == 1 and lengths[0] == 1:
            return np.zeros((1, 1), np.int64)
        return np.asarray([[max(n - 2, 0), n - 1] for n in lengths], np.int64)

    def prefill(self, prompts: list[list[int]], first_slot: int) -> np.ndarray:
        """Run new prompts (no past) into slots first_slot…; returns each row's last-position logits [n, vocab]."""
        width = max(len(p) for p in prompts)
        input_ids = np.full((len(prompts), width), self.pad_id, np.int64)
        mask = np.zeros((len(prompts), width), np.int64)
        for row, prompt in enumerate(prompts):
            input_ids[row, : len(prompt)] = prompt
            mask[row, : len(prompt)] = 1
        positions = self._last_two([len(p) for p in prompts])
        return self._run(input_ids, mask, first_slot, first_slot + len(prompts), positions)[:, -1]

    def extend(self, slot: int, tokens: list[int], cached: int) -> np.ndarray:
        """Append a chunk of prompt tokens to one slot that already holds `cached` positions (batch 1, as the graph
        requires with a past); returns the chunk's last-position logits [vocab]."""
        input_ids = np.asarray(tokens, np.int64).reshape(1, -1)
        mask = np.ones((1, cached + len(tokens)), np.int64)
        return self._run(input_ids, mask, slot, slot + 1, self._last_two([len(tokens)]))[0, -1]

    def verify(self, slot: int, tokens: list[int], cached: int) -> np.ndarray:
        """Append two or more tokens to one slot that holds `cached` positions (batch 1, as the graph requires with a
        past); returns the logits after each of them [len(tokens), vocab], a new array. Positions past those the
        caller keeps are simply written over by its next call (masks only ever cover a row's own length)."""
        key = (slot, self.cache.generation)
        if self._verify_binding is None or self._verify_key != key:
            self._verify_binding = self.session.io_binding()
            self._bind_cache(self._verify_binding, slot, slot + 1)
            self._verify_key = key
        binding = self._verify_binding
        binding.bind_cpu_input(self._ids, np.asarray(tokens, np.int64).reshape(1, -1))
        binding.bind_cpu_input(self._mask, np.ones((1, cached + len(tokens)), np.int64))
        if self.gathers:  # every position: each one's logits are sampled
            binding.bind_cpu_input(POSITIONS_INPUT, np.arange(len(tokens), dtype=np.int64).reshape(1, -1))
        binding.bind_output(self._logits)  # its shape changes with the draft's length: onnxruntime allocates it
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[-1].numpy()[0]

    def decode(self, tokens: list[int], lengths: list[int]) -> np.ndarray:
        """One step for rows 0…n-1 (token t_i after length_i cached positions); returns logits [n, vocab].

        The logits are a view of a buffer the next decode overwrites: read them before calling again."""
        n = len(tokens)
        key = (n, self.cache.generation)
        if self._step_binding is None or self._step_key != key:
            self._step_binding = self.session.io_binding()
            self._bind_cache(self._step_binding, 0, n)
            self._step_binding.bind_ortvalue_output(
                self._logits, ort.OrtValue.ortvalue_from_numpy(self._step_logits[:n])
            )
            if self.gathers:  # one new position per row, its only one: the gather changes nothing here
                self._step_positions = np.zeros((n, 1), np.int64)
                self._step_binding.bind_cpu_input(POSITIONS_INPUT, self._step_positions)
            self._step_key = key
        width = max(lengths) + 1
        mask = (np.arange(width)[None, :] <= np.asarray(lengths)[:, None]).astype(np.int64)
        self._step_binding.bind_cpu_input(self._ids, np.asarray(tokens, np.int64).reshape(n, 1))
        self._step_binding.bind_cpu_input(self._mask, mask)
        self.session.run_with_iobinding(self._step_binding)
        return self._step_logits[:n, -1]
