"""The weight file's pages onnxruntime keeps mapped after loading (scales, zero points) are given back, on the real
SmolLM2, and the model computes the same bits afterwards: a decoder that keeps them and one that released them (which
released the first one's too: both map the same file) give bit-identical logits, the released pages being read back
from the file where needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.weight_pages import file_mappings, releasable
from chat_service.engine.model_folder import ModelFolder

SMAPS = """\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 11 /usr/bin/python3.11
7f0000000000-7f0000200000 rw-p 00010000 08:01 42 {folder}/model.onnx.data
Size:               2048 kB
Rss:                1536 kB
Pss:                1536 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
7f0000300000-7f0000301000 rw-p 00220000 08:01 42 {folder}/model.onnx.data
Rss:                   4 kB
Anonymous:             4 kB
7f0000400000-7f0000401000 r--p 00000000 08:01 43 {folder}-other/model.onnx.data
Rss:                   4 kB
Anonymous:             0 kB
"""


def test_file_mappings_reads_the_mappings_under_the_folder_and_their_resident_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    smaps = tmp_path / "smaps"
    smaps.write_text(SMAPS.format(folder=folder.resolve()))
    found = file_mappings(folder, smaps)
    assert [(m.start, m.end, m.perms, m.rss_bytes, m.anonymous_bytes) for m in found] == [
        (0x7F0000000000, 0x7F0000200000, "rw-p", 1536 * 1024, 0),
        (0x7F0000300000, 0x7F0000301000, "rw-p", 4096, 4096),  # a page written to: never released
    ]
    assert {m.path for m in found} == {f"{folder.resolve()}/model.onnx.data"}
    assert [releasable(m) for m in found] == [True, False]


def resident(folder: Path) -> int:
    return sum(mapping.rss_bytes for mapping in file_mappings(folder))


def test_released_pages_leave_the_logits_bit_identical(smollm_path: Path) -> None:
    # Exact on every CPU (AVX2 or AVX-512): both decoders run in this process, on the same kernels, with the same
    # session options and the same bytes; only where those bytes are read from differs.
    folder = ModelFolder(smollm_path, max_model_len=256)
    kept = OnnxDecoder(smollm_path, folder.config, 2, 2, 256, release_weight_file=False)
    held = resident(smollm_path)
    assert kept.released_bytes == 0
    assert held > 4 * 2**20, f"only {held} bytes of the weight file resident after loading: nothing to give back?"
    released = OnnxDecoder(smollm_path, folder.config, 2, 2, 256)
    assert released.released_bytes >= held
    assert resident(smollm_path) < held / 4
    tokens = [int(t) for t in np.random.default_rng(3).integers(100, 40000, 48)]
    calls = [
        lambda d: d.prefill([tokens[:40], tokens[8:30]], 0),
        lambda d: d.decode([tokens[40], tokens[30]], [40, 22]).copy(),
        lambda d: d.decode([tokens[41], tokens[31]], [41, 23]).copy(),
        lambda d: d.extend(1, tokens[32:44], cached=24),
    ]
    for number, call in enumerate(calls):
        np.testing.assert_array_equal(call(released), call(kept), err_msg=f"call {number}")
