"""bench/report.py on made-up results: the figures are medians over repeats, the ratios are paired within a repeat,
and the markdown and its plots are written. No timing is measured or asserted here."""

from __future__ import annotations

from pathlib import Path

from bench import report

EPYC = "AMD EPYC 7B12 (AuthenticAMD family 23 model 49), ISA avx2, 2 usable cores"
CPU = {"seconds": 1.0, "busy_cores": 1.0, "own_cores": 1.0, "other_cores": 0.0, "load_1m": 0.5}


def chat_row(target: str, c: int, prompt: str, repeat: int, tok_s: float, ttft_s: float) -> dict:
    return {
        "target": target,
        "concurrency": c,
        "prompt": prompt,
        "repeat": repeat,
        "seconds": 1.0,
        "output_tok_s": tok_s,
        "ttft_s": [ttft_s] * 4,
        "decode_tok_s": [tok_s / c] * 4,
        "completion_tokens": [32] * 4,
        "prompt_tokens": [43 if prompt == "short" else 203] * 4,
        "errors": [],
        "cpu": CPU,
    }


def fake_results() -> dict:
    rows = []
    for repeat, noise in enumerate((1.0, 2.0)):  # the second repeat is twice as fast for everyone
        for c in (1, 2):
            for prompt in ("short", "long"):
                rows.append(chat_row("engine", c, prompt, repeat, 100 * c * noise, 0.1 / noise))
                rows.append(chat_row("chat direct", c, prompt, repeat, 50 * c * noise, 0.2 / noise))
                rows.append(chat_row("llama-server Q4_1", c, prompt, repeat, 80 * c * noise, 0.1 / noise))
    embed = [
        {"target": "sentence-transformers", "batch": 1, "clients": 1, "repeat": 0, "sentences_per_s": 100.0},
        {"target": "proxy", "batch": 1, "clients": 1, "repeat": 0, "sentences_per_s": 150.0},
    ]
    for row in embed:
        row |= {"cpu": CPU, "errors": []}
    return {
        "plan": {"concurrencies": [1, 2], "max_tokens": 32, "repeats": 2, "min_requests": 4, "rounds": 2},
        "quick": True,
        "load_1m_at_start": 0.5,
        "load_1m_at_end": 0.6,
        "environment": {
            "date": "2026-01-01 00:00 UTC",
            "machine": "test machine",
            "cpu": {"model_name": "AMD EPYC 7B12", "isa": ["avx2"], "usable_cores": 2, "describe": EPYC},
            "kernel": "6",
            "python": "3.11",
            "versions": {"onnxruntime-genai": "0.18.0"},
            "llama.cpp": "version: test",
            "git": "abc1234",
            "uncommitted_service_files": [],
            "chat_settings": {},
            "peers": {"llama-server Q4_1": {"gguf": "x.gguf", "command": "/bin/llama-server -m x.gguf -np 8"}},
        },
        "chat": rows,
        "embeddings": {"rows": embed, "min_cosine_vs_reference": 0.9999, "reference_versions": {"torch": "2"}},
    }


def test_figures_are_medians_and_ratios_are_paired() -> None:
    table = report.ChatTable(fake_results()["chat"])
    assert table.figure("engine", 2, "short", "aggregate") == 300  # median of 200 and 400
    assert table.ratio("chat direct", "engine", 2, "short", "aggregate") == 0.5
    assert table.ratio("chat direct", "llama-server Q4_1", 1, "long", "ttft_p50") == 2.0
    assert table.figure("chat direct", 1, "short", "ttft_p95") == (200 + 100) / 2


def test_report_and_plots_are_written(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    report.write(fake_results(), out)
    text = out.read_text()
    assert "Quick run" in text and "0.50× engine" in text and "0.62× llama Q4_1" in text
    assert f"\nCPU: {EPYC}.\n" in text and f"| cpu | {EPYC} |" in text  # the kernels ONNX Runtime picks depend on it
    assert "| 1 | 1 | **150** | 1.50 |" in text
    for name in ("throughput", "ttft", "embeddings"):
        assert (tmp_path / "benchmarks" / f"{name}.png").stat().st_size > 1000
        assert f"(benchmarks/{name}.png)" in text


def test_the_throughput_scorecard_pairs_within_repeats() -> None:
    from bench import targets

    rows = []
    for repeat, noise in enumerate((1.0, 2.0)):
        for c, tok_s, ttft in ((1, 100, 0.1), (8, 250, 0.3)):
            rows.append(chat_row("engine", c, "short", repeat, 120 * c * noise, 0.1 / noise))
            rows.append(chat_row(targets.PROXY, c, "short", repeat, tok_s * noise, ttft / noise))
            rows.append(chat_row(targets.DIRECT, c, "short", repeat, tok_s * noise, ttft / noise))
            rows.append(chat_row(targets.BEFORE, c, "short", repeat, 100 * noise, 8 * ttft / noise))
            rows.append(chat_row("llama-server Q4_0", c, "short", repeat, 200 * noise, 0.1 / noise))
    text = "\n".join(targets.section(report.ChatTable(rows)))
    assert "| aggregate tok/s at 8 concurrent / at 1 | 2.50× met | 2.50× met | ≥ 2.4× at 8 |" in text
    assert "| TTFT p50 at 8 concurrent / at 1 | 3.00× **not met** | 3.00× **not met** | ≤ 2× at 8 |" in text
    # per-stream decode is tok_s / c in these rows: 100 / 120 at c = 1
    assert "| single-stream decode / the plain engine | 0.83× **not met** | 0.83× **not met** | ≥ 0.95× |" in text
    assert "| aggregate at 8 concurrent / llama-server Q4_0 | 1.25× met | 1.25× met | ≥ 1.0× at 8 |" in text
    assert "| aggregate tok/s at 8 concurrent | 2.50× |" in text and "| TTFT p50 at 8 concurrent | 0.12×" in text
    # the engine's rows are 120 × c tok/s and the same TTFT at every c
    scale = "no HTTP): aggregate at 8 / at 1 8.00×, TTFT p50 at 8 / at 1 1.00×."
    assert "the plain engine in the same run (static batches of 8 that start together, " + scale in text


def test_prefix_reuse_is_scored_against_the_same_service_without_it(tmp_path: Path) -> None:
    from bench import targets

    results = fake_results()
    for repeat, noise in enumerate((1.0, 2.0)):
        for c, ttft in ((1, 0.1), (2, 0.15)):
            results["chat"].append(chat_row("engine", c, "shared", repeat, 100 * c * noise, 0.4 / noise))
            results["chat"].append(chat_row(targets.DIRECT, c, "shared", repeat, 60 * c * noise, ttft / noise))
            results["chat"].append(chat_row(targets.NO_REUSE, c, "shared", repeat, 50 * c * noise, 4 * ttft / noise))
    text = "\n".join(targets.prefix_section(report.ChatTable(results["chat"])))
    assert "| TTFT p50 at 1 concurrent | 0.25× |" in text and "| TTFT p50 at 2 concurrent | 0.25× |" in text
    assert "| aggregate tok/s at 2 concurrent | 1.20× |" in text
    assert "| TTFT p50 at 2 concurrent / at 1 | 1.50× with reuse, 1.50× without |" in text

    out = tmp_path / "BENCHMARKS.md"
    report.write(results, out)
    written = out.read_text()
    assert "## Prefix reuse" in written and "### TTFT p50, ms, shared prompts" in written
    shared_table = written.split("### TTFT p50, ms, shared prompts")[1].split("###")[0]
    assert "0.25× no reuse" in shared_table and "llama" not in shared_table  # only targets measured there
    # the no-reuse service appears in no table of the other prompts
    assert "no reuse" not in written.split("### TTFT p50, ms, short prompts")[1].split("###")[0]


def test_multi_turn_section_reports_each_turn_with_and_without_the_cache() -> None:
    from bench import multi_turn

    rows = [
        {"target": multi_turn.CACHED, "turn": 1, "ttft_s": 0.8, "input_tokens": 200, "cached_tokens": 0, "repeat": 0},
        {"target": multi_turn.UNCACHED, "turn": 1, "ttft_s": 0.8, "input_tokens": 200, "cached_tokens": 0, "repeat": 0},
        {"target": multi_turn.CACHED, "turn": 2, "ttft_s": 0.2, "input_tokens": 280, "cached_tokens": 224, "repeat": 0},
        {"target": multi_turn.UNCACHED, "turn": 2, "ttft_s": 0.8, "input_tokens": 280, "cached_tokens": 0, "repeat": 0},
    ]
    table = "\n".join(multi_turn.section(rows))
    assert "| 1 | 200 | 0 | 800 ms | 800 ms | 1.00× |" in table
    assert "| 2 | 280 | 224 | 200 ms | 800 ms | 0.25× |" in table
    assert multi_turn.section([]) == []


def real_size_results(direct_peak_mb: float = 1000.0) -> dict:
    from bench import targets

    rows = []
    for repeat, noise in enumerate((1.0, 2.0)):
        for c, ours, ttft in ((1, 40, 0.1), (8, 160, 0.15)):
            rows.append(chat_row("engine", c, "short", repeat, 40 * noise, 0.1 / noise))
            rows.append(chat_row(targets.DIRECT, c, "short", repeat, ours * noise, ttft / noise))
            rows.append(chat_row("llama-server Q4_K_M", c, "short", repeat, 30 * noise, 0.1 / noise))
            rows.append(chat_row("llama-server Q4_0", c, "short", repeat, 50 * c**0.5 * noise, 0.1 / noise))
    results = fake_results() | {"chat": rows, "model": "qwen2.5-coder-0.5b-instruct", "quick": False}
    del results["embeddings"]
    results["plan"]["concurrencies"] = [1, 8]
    results["rss"] = {
        targets.DIRECT: {"rss_mb": 900.0, "peak_mb": direct_peak_mb},
        "llama-server Q4_0": {"rss_mb": 800.0, "peak_mb": 800.0},
    }
    return results


def test_a_real_size_run_is_scored_against_the_best_llama_server_and_by_memory(tmp_path: Path) -> None:
    out = tmp_path / "qwen2.5-coder-0.5b-instruct.md"
    report.write(real_size_results(), out)
    text = out.read_text()
    assert text.startswith("# Benchmarks: qwen2.5-coder-0.5b-instruct")
    # Q4_0 is the best peer at both concurrencies: 50 × √8 ≈ 141 at 8 (median over repeats 212), 50 at 1 (75)
    assert "| aggregate at 8 concurrent / the best llama-server (Q4_0) | 1.13× **not met** | ≥ 1.2× at 8 |" in text
    assert "| aggregate at 8 concurrent / our own at 1 | 4.00× met | ≥ 3× at 8 |" in text
    assert "| single-stream decode / the best llama-server (Q4_0) | 0.80× **not met** | ≥ 1.0× |" in text
    assert "| single-stream decode / the plain engine | 1.00× met | ≥ 0.95× |" in text
    assert "| TTFT p50 at 8 concurrent / at 1 | 1.50× met | ≤ 2× at 8 |" in text
    assert "| llama-server Q4_0 | 800 | 800 | 1.25× **not met** (target ≤ 1.0×) |" in text
    assert "## Embeddings" not in text
    assert (tmp_path / out.stem / "throughput.png").stat().st_size > 1000


def test_the_summary_gathers_every_real_size_scorecard_and_a_later_run_replaces_its_own(tmp_path: Path) -> None:
    from bench import real_size

    summary, reports = tmp_path / "BENCHMARKS.md", tmp_path / "benchmarks"
    report.write(fake_results(), summary)  # the SmolLM2 run: no real-size report yet, so no such section
    assert real_size.INDEX_BEGIN not in summary.read_text()
    report.write(real_size_results(), reports / "qwen2.5-coder-0.5b-instruct.md")
    real_size.refresh_index(summary, reports)
    text = summary.read_text()
    link = "### [qwen2.5-coder-0.5b-instruct](benchmarks/qwen2.5-coder-0.5b-instruct.md) (short prompts)"
    assert link in text and f"Measured 2026-01-01 00:00 UTC on {EPYC}; plan: " in text
    assert text.index(real_size.INDEX_BEGIN) < text.index(link) < text.index(real_size.INDEX_END)
    assert text.index(real_size.INDEX_END) < text.index("## Setup") < text.index("## Embeddings")
    assert "| aggregate at 8 concurrent / our own at 1 | 4.00× met | ≥ 3× at 8 |" in text
    assert "| llama-server Q4_0 | 800 | 800 | 1.25× **not met** (target ≤ 1.0×) |" in text

    report.write(real_size_results(direct_peak_mb=600.0), reports / "qwen2.5-coder-0.5b-instruct.md")
    real_size.refresh_index(summary, reports)
    again = summary.read_text()
    assert again.count(real_size.INDEX_BEGIN) == again.count(link) == 1
    assert "| llama-server Q4_0 | 800 | 800 | 0.75× met (target ≤ 1.0×) |" in again
    assert "1.25× **not met** (target ≤ 1.0×)" not in again
    assert "A quick run" not in again
    quick = real_size_results() | {"quick": True}
    report.write(quick, reports / "qwen2.5-coder-0.5b-instruct.md")
    real_size.refresh_index(summary, reports)
    assert "A quick run: not figures to quote." in summary.read_text()
    # The next SmolLM2 run writes the summary afresh and takes the scorecards in again.
    report.write(fake_results(), summary)
    assert summary.read_text().count(link) == 1


def test_results_from_before_the_cpu_was_recorded_still_make_a_report(tmp_path: Path) -> None:
    results = fake_results()
    del results["environment"]["cpu"]
    report.write(results, tmp_path / "BENCHMARKS.md")
    assert (
        "| cpu | not recorded (a run from before the CPU's flags were recorded) |"
        in (tmp_path / "BENCHMARKS.md").read_text()
    )


def test_the_threads_under_a_cpu_limit_table_takes_medians_over_every_reply() -> None:
    from bench import threads_cgroup

    cpu = {"own_cores": 1.0, "other_cores": 0.1}
    rows = [
        {"setting": "default", "engine_threads": 1, "usable_cores": "1", "decode_tok_s": [50.0, 60.0], "cpu": cpu},
        {"setting": "forced 4", "engine_threads": 4, "usable_cores": "1", "decode_tok_s": [10.0, 30.0], "cpu": cpu},
        {"setting": "default", "engine_threads": 1, "usable_cores": "1", "decode_tok_s": [40.0], "cpu": cpu},
    ]
    environment = {"date": "2026-01-01 00:00 UTC", "git": "abc1234", "cpu": {"describe": EPYC}}
    results = {"environment": environment, "cpus": 1.0, "image": "ortserve-chat:latest", "max_tokens": 128}
    lines = threads_cgroup.table(results | {"rows": rows})
    assert f"CPU: {EPYC} (the host); container: `--cpus 1`" in lines[0]
    assert "| default | 1 | 1 | 50.0 (40.0–60.0) | 1.00 / 0.10 | — |" in lines  # rows from before cpu.stat was read
    rows[1] |= {"periods": 100, "throttled": 90}
    assert "| forced 4 | 4 | 1 | 20.0 (10.0–30.0) | 1.00 / 0.10 | 90 of 100 |" in threads_cgroup.table(
        results | {"rows": rows}
    )
