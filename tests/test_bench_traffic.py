"""bench/traffic.py without a server: the phases it selects, the llama-server flags that make the manifest's defaults
its defaults, the prompts, and the report's paired ratios on made-up rows. No timing is measured or asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from ortserve_common.model_manifest import SamplingDefaults, load_manifest
from ortserve_testing.bench_rows import phase_row

from bench import peers, traffic, traffic_index, traffic_prompts, traffic_report

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
    assert "requests a phase by streams: 4 at 1;" in (tmp_path / "traffic.md").read_text()


def scored(tmp_path: Path, rows: list[dict], memory: dict, ceiling: dict | None) -> str:
    results = {
        "model": "m",
        "started": "now",
        "args": {"repeats": 1},
        "defaults": {},
        "load_1m_at_start": 0.5,
        "load_1m_at_end": 0.5,
        "environment": {"cpu": {"describe": "some CPU"}, "llama.cpp": "b1"},
        "chat": rows,
        "memory": memory,
    } | ({"kernel_ceiling": ceiling} if ceiling else {})
    traffic_report.write(results, tmp_path / "traffic.md")
    return (tmp_path / "traffic.md").read_text()


def test_the_scorecard_judges_each_target_against_llama_servers_best_variant(tmp_path: Path) -> None:
    slow = "llama-server Q4_K_M"
    rows = []
    for c, ours, best in ((1, 42.0, 40.0), (8, 104.0, 80.0)):  # 1.05× at one stream, 1.3× at 8: both just met
        for arm in ("greedy", "defaults"):
            rows += [row(traffic.PROXY, arm, c, 0, ours), row(PEER, arm, c, 0, best), row(slow, arm, c, 0, best / 2)]
    rows += [row(traffic.PROXY, "code-edit", 1, 0, 30.0), row(traffic.PROXY, "code-edit+lookup", 1, 0, 44.0)]
    rows += [row(traffic.PROXY, "defaults+lookup", 1, 0, 42.0 * 0.96)]
    memory = {
        traffic.PROXY: {"peak_mb": 900, "rss_mb": 800, "loaded_mb": 600},
        PEER: {"peak_mb": 750, "rss_mb": 700},  # a run from before RSS loaded was recorded
    }
    ceiling = {"rows": 8, "step_ms_1": 20.0, "step_ms_rows": 40.0, "ceiling": 4.0, "threads": 2}
    text = scored(tmp_path, rows, memory, ceiling)
    assert "- our chat service: 900 MB peak, 800 MB now, 600 MB loaded\n" in text
    assert f"- {PEER}: 750 MB peak, 700 MB now\n" in text
    assert f"| 1 stream, greedy: ours / llama-server's best ({PEER}) | 1.05× | ≥ 1.05 | met |" in text
    assert f"| 8 streams, defaults: ours / llama-server's best ({PEER}) | 1.30× | ≥ 1.3 | met |" in text
    assert "| ours, 1 stream(s): default samplers / greedy | 1.00× | ≥ 0.95 | met |" in text
    assert "| ours, 1 stream: code edit with prompt lookup / without | 1.47× | ≥ 1.5 | **not met** |" in text
    assert "| ours, 1 stream: open chat with prompt lookup / without | 0.96× | ≥ 0.97 | **not met** |" in text
    row_name = "| ours, 1 stream: open chat with prompt lookup / without, per-stream decode tok/s"
    assert f"{row_name} | 0.96× | ≥ 0.97 | **not met** |" in text
    assert f"| peak RSS: our chat service / llama-server ({PEER}) | 1.20× | ≤ 1 | **not met** |" in text
    # Every phase row has TTFT 100 ms on both sides; the quickest peer is the one compared with.
    assert "| TTFT p50, 1 stream, greedy: ours / llama-server" in text and "| 1.00× | ≤ 1 | met |" in text
    # 104 / 42 = 2.48× over one stream, against a 4× ceiling: 62 % of it.
    assert f"{traffic.PROXY}, greedy: 8 over 1 = 2.48×, 62% of the ceiling" in text
    assert "at most **4.00×** one stream's tokens per second" in text


def test_arms_are_also_judged_by_decode_rate_which_answer_lengths_do_not_sway(tmp_path: Path) -> None:
    # The lookup arm's answers came out short (16 tokens against 128): the same decode rate, but its TTFT weighs on
    # its aggregate. The decode row reads the rate the arm itself changes.
    plain = row(traffic.PROXY, "defaults", 1, 0, 40.0)
    short = row(traffic.PROXY, "defaults+lookup", 1, 0, 30.0) | {
        "completion_tokens": [16] * 4,
        "decode_tok_s": [40.0] * 4,
    }
    text = scored(tmp_path, [plain, short], {}, None)
    assert "| ours, 1 stream: open chat with prompt lookup / without | 0.75× | ≥ 0.97 | **not met** |" in text
    row_name = "| ours, 1 stream: open chat with prompt lookup / without, per-stream decode tok/s"
    assert f"{row_name} | 1.00× | ≥ 0.97 | met |" in text


def test_ours_against_llama_server_is_also_read_by_decode_rate(tmp_path: Path) -> None:
    # An 8-request burst where three of our sampled answers stopped early: fewer tokens over a wall time set by the
    # longest answer, so 1.1× by aggregate, while each of our steps ran 1.6× as fast as the peer's.
    ours = row(traffic.PROXY, "defaults", 8, 0, 104.0) | {"decode_tok_s": [22.0] * 8}
    peer = row(PEER, "defaults", 8, 0, 94.5) | {"decode_tok_s": [13.75] * 8}
    text = scored(tmp_path, [ours, peer], {}, None)
    assert f"| 8 streams, defaults: ours / llama-server's best ({PEER}) | 1.10× | ≥ 1.3 | **not met** |" in text
    decode = f"| 8 streams, defaults: ours / llama-server's best, per-stream decode tok/s ({PEER}) | 1.60× |"
    assert f"{decode} ≥ 1.3 | met |" in text


def test_targets_a_run_did_not_measure_say_so_rather_than_pass(tmp_path: Path) -> None:
    text = scored(tmp_path, [row(traffic.PROXY, "greedy", 1, 0, 40.0), row(PEER, "greedy", 1, 0, 40.0)], {}, None)
    assert "| 8 streams, greedy: ours / llama-server's best | - | ≥ 1.3 | not measured in this run |" in text
    assert "| ours, 1 stream: code edit with prompt lookup / without | - | ≥ 1.5 | not measured in this run |" in text
    assert "kernel ceiling: not measured in this run" in text
    assert "shared with other jobs" not in text  # made-up rows: others used 0.1 cores


def test_the_benchs_manifest_serves_the_on_demand_15b_as_its_family_and_refuses_unknown_models(tmp_path: Path) -> None:
    manifest = load_manifest(traffic.run_manifest("qwen2.5-coder-1.5b-instruct", tmp_path / "m.yaml"))
    large, small = manifest.entry("qwen2.5-coder-1.5b-instruct"), manifest.entry("qwen2.5-coder-0.5b-instruct")
    assert large is not None and small is not None
    assert large.path == "qwen2.5-coder-1.5b-instruct" and large.defaults == small.defaults
    assert manifest.entry("qwen2.5-coder") is small  # the alias stays the 0.5B's
    same = load_manifest(traffic.run_manifest("qwen2.5-coder-0.5b-instruct", tmp_path / "n.yaml"))
    assert [e.id for e in same.models] == [e.id for e in load_manifest(traffic.MANIFEST).models]
    with pytest.raises(SystemExit, match="not in"):
        traffic.run_manifest("no-such-model", tmp_path / "o.yaml")


def test_benchmarks_md_gathers_each_models_traffic_scorecard_and_keeps_the_rest(tmp_path: Path) -> None:
    reports = tmp_path / "benchmarks"
    reports.mkdir()
    scored(reports, [row(traffic.PROXY, "greedy", 1, 0, 42.0), row(PEER, "greedy", 1, 0, 40.0)], {}, None)
    (reports / "traffic.md").rename(reports / "m-traffic.md")
    (reports / "m.md").write_text("# Benchmarks: m\n")  # a real-size report: not a traffic one
    summary = tmp_path / "BENCHMARKS.md"
    summary.write_text("# Benchmarks\n\nabove\n\n## Setup\n\nbelow\n")
    for _ in range(2):  # a second run replaces the part, never adds another
        traffic_index.refresh(summary, reports)
    text = summary.read_text()
    assert text.count(traffic_index.BEGIN) == 1 and text.index("above") < text.index(traffic_index.BEGIN)
    assert text.index(traffic_index.END) < text.index("## Setup") < text.index("below")
    assert "### [m](benchmarks/m-traffic.md)" in text and "- **CPU: some CPU**" in text
    assert f"| 1 stream, greedy: ours / llama-server's best ({PEER}) | 1.05× | ≥ 1.05 | met |" in text


def test_llama_server_gets_the_prompt_cache_budget_our_chat_service_has_by_default() -> None:
    from chat_service.settings import ChatSettings

    assert ChatSettings.model_fields["prefix_cache_mb"].default == peers.PROMPT_CACHE_MIB
    args = peers.SERVER_ARGS
    assert args[args.index("--cache-ram") + 1] == str(peers.PROMPT_CACHE_MIB)
