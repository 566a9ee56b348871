"""bench/traffic.py without a server: the phases it selects, the llama-server flags that make the manifest's defaults
its defaults, the prompts, and the report's paired ratios on made-up rows. No timing is measured or asserted."""

from __future__ import annotations

from pathlib import Path

from ortserve_common.model_manifest import SamplingDefaults
from ortserve_testing.bench_rows import phase_row

from bench import traffic, traffic_prompts, traffic_report

PEER = "llama-server Q4_0"


def test_each_phase_can_be_run_alone_and_greedy_is_the_only_arm_that_sends_samplers() -> None:
    assert [a.name for a in traffic.arms(["long"], 128, 320)] == ["long"]
    every = traffic.arms(["samplers", "long", "code-edit"], 128, 320)
    names = ["greedy", "defaults", "defaults+lookup", "long", "code-edit", "code-edit+lookup"]
    assert [a.name for a in every] == names
    # None: temperature 0; {}: no sampler field at all; the lookup arms add only the speculation request.
    assert [a.sampling for a in every] == [None, {}, traffic.LOOKUP, {}, {}, traffic.LOOKUP]
    assert next(a for a in every if a.name == "long").max_tokens >= 256


def test_only_our_extension_arms_are_kept_from_llama_server() -> None:
    every = traffic.arms(["samplers", "long", "code-edit"], 128, 320)
    assert [a.name for a in every if a.ours_only] == ["defaults+lookup", "code-edit+lookup"]
    assert traffic.LOOKUP == {"speculative": {"method": "ngram"}}


def test_llama_server_gets_the_manifests_defaults_and_none_of_its_own_extras() -> None:
    args = traffic.llama_sampler_args(SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05))
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags == {
        "--temp": "0.7",
        "--top-p": "0.8",
        "--top-k": "20",
        "--min-p": "0.0",
        "--repeat-penalty": "1.05",
        "--repeat-last-n": "8192",  # llama-server's whole context (-c), every slot's tokens
    }


def test_prompts_are_unique_and_a_code_edit_carries_its_whole_function() -> None:
    first, second = traffic_prompts.code_edit(0), traffic_prompts.code_edit(0)
    assert first != second  # the nonce: no engine reuses a cached prefix
    assert traffic_prompts.FUNCTIONS[0] in first[0]["content"]


def row(target: str, arm: str, c: int, repeat: int, tok_s: float) -> dict:
    return phase_row(target, arm, c, repeat, tok_s, phase="samplers")


def test_the_report_pairs_ratios_within_a_repeat(tmp_path: Path) -> None:
    rows = []
    for repeat, scale in ((0, 1.0), (1, 2.0)):  # the second repeat twice as fast on both sides: ratios unchanged
        rows += [row(traffic.PROXY, "greedy", 1, repeat, 50 * scale), row(PEER, "greedy", 1, repeat, 40 * scale)]
        rows += [row(traffic.PROXY, "defaults", 1, repeat, 45 * scale), row(PEER, "defaults", 1, repeat, 30 * scale)]
    results = {
        "model": "m",
        "started": "now",
        "args": {"repeats": 2},
        "defaults": {"temperature": 0.7},
        "load_1m_at_start": 1.0,
        "load_1m_at_end": 1.0,
        "environment": {"cpu": {"describe": "some CPU"}, "llama.cpp": "b1"},
        "chat": rows,
    }
    summary = traffic_report.write(results, tmp_path / "traffic.md")
    assert f"greedy, 1 stream(s): ours / {PEER} (its best here) = **1.25×**" in summary
    assert f"defaults, 1 stream(s): ours / {PEER} (its best here) = **1.50×**" in summary
    assert f"{traffic.PROXY}, 1 stream(s): default samplers / greedy = **0.90×**" in summary
    assert f"{PEER}, 1 stream(s): default samplers / greedy = **0.75×**" in summary
    assert "some CPU" in (tmp_path / "traffic.md").read_text()
