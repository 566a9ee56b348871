"""docs/QUALITY.md from the quality gate's results: per model, int4 against fp32 and llama.cpp's ratios beside."""

from __future__ import annotations

from pathlib import Path

from bench.quality.perplexity import Score
from bench.quality.weight_types import describe

TARGET = 1.03  # int4 perplexity at most this many times the fp32 one


def _total(entries: dict, names: list[str]) -> Score:
    total = Score(0.0, 0)
    for name in names:
        total = total + Score(entries[name]["nll"], entries[name]["count"])
    return total


def perplexities(model: dict, names: list[str]) -> dict[str, dict[str, float]]:
    """{side: {text or 'all': perplexity}}; sides int4, fp32 and llama.cpp's variants."""
    sides = {"int4": model["int4"], "fp32": model["fp32"]["texts"]}
    sides |= {f"llama.cpp {variant}": entries for variant, entries in model.get("llama", {}).items()}
    return {
        side: {name: _total(entries, [name]).perplexity for name in names} | {"all": _total(entries, names).perplexity}
        for side, entries in sides.items()
    }


def verdicts(results: dict) -> dict[str, dict]:
    names = [text["name"] for text in results["texts"]]
    out = {}
    for model_id, model in results["models"].items():
        ppl = perplexities(model, names)
        ratio = ppl["int4"]["all"] / ppl["fp32"]["all"]
        verdict: dict = {"ratio": ratio, "met_target": ratio <= TARGET}
        if "llama.cpp F32" in ppl:
            verdict["llama_q4_0_ratio"] = ppl["llama.cpp Q4_0"]["all"] / ppl["llama.cpp F32"]["all"]
            verdict["met_llama"] = ratio <= verdict["llama_q4_0_ratio"]
        verdict["met"] = verdict["met_target"] and verdict.get("met_llama", True)
        out[model_id] = verdict
    return out


def _yes(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def model_section(model_id: str, model: dict, names: list[str], verdict: dict) -> list[str]:
    ppl = perplexities(model, names)
    lines = [f"## {model_id}", ""]
    lines += [f"| side | {' | '.join(names)} | all | ratio to its fp32 |", "|---" * (len(names) + 3) + "|"]
    for side, values in ppl.items():
        reference = ppl["llama.cpp F32" if side.startswith("llama.cpp") else "fp32"]["all"]
        cells = " | ".join(f"{values[name]:.3f}" for name in [*names, "all"])
        lines.append(f"| {side} | {cells} | {values['all'] / reference:.4f} |")
    tokens = ", ".join(f"{name} {count}" for name, count in model["tokens"].items())
    lines += ["", f"Tokens (served tokenizer): {tokens}. fp32 from `{model['fp32']['source']}`."]
    if "llama_q4_0_ratio" in verdict:
        llama_tokens = ", ".join(f"{n} {model['llama']['F32'][n]['tokens']}" for n in names)
        source = next(variant for variant, entries in model["llama"].items() if entries["source"])
        lines.append(f"llama.cpp's tokenization: {llama_tokens}; its source GGUF is {source}.")
    lines += types_lines(model)
    lines += ["", f"- int4 / fp32 = {verdict['ratio']:.4f} (target ≤ {TARGET}): {_yes(verdict['met_target'])}"]
    if "llama_q4_0_ratio" in verdict:
        lines.append(
            f"- against llama.cpp's Q4_0 / F32 = {verdict['llama_q4_0_ratio']:.4f} on the same GGUF: "
            f"{_yes(verdict['met_llama'])}"
        )
    seconds = f"int4 {sum(v['seconds'] for v in model['int4'].values()):.0f} s, fp32 {model['fp32']['seconds']:.0f} s"
    lines += [f"- time: {model['seconds']} s for this model ({seconds}; the rest: loading, llama.cpp if run)", ""]
    return lines


def types_lines(model: dict) -> list[str]:
    """What each side stores its weight matrices in (tied tables counted once), where the run recorded it."""
    sides = {"int4 (ours)": model.get("int4_types")}
    sides |= {f"llama.cpp {variant}": entries.get("types") for variant, entries in model.get("llama", {}).items()}
    known = {side: types for side, types in sides.items() if types}
    if not known:
        return []
    lines = ["", "| side | weight matrices by type (share of their weights) |", "|---|---|"]
    return lines + [f"| {side} | {describe(types)} |" for side, types in known.items()]


def output_type(model: dict, side: str) -> str:
    types = model.get("int4_types") if side == "int4" else model.get("llama", {}).get(side, {}).get("types")
    return types["output"] if types else "?"


def write(results: dict, out: Path) -> str:
    names = [text["name"] for text in results["texts"]]
    verdict = verdicts(results)
    env = results["environment"]
    lines = [
        "# Quality gate: perplexity of the served int4 models",
        "",
        "Produced by `make quality` (bench/quality/); do not edit by hand. Perplexity over a fixed offline corpus, "
        f"windows of {results['context']} tokens every {results['stride']} (llama-perplexity's `--ppl-stride`: "
        "each window from an empty cache, its last stride tokens scored), on every side.",
        "",
        f"- CPU: {env['cpu']['describe']}; {results['threads']} threads; load average "
        f"{results['load_1m_at_start']} at the start, {results['load_1m_at_end']} at the end (a shared machine)",
        f"- run: {results['started']}, {results['seconds']} s this run; `{results['command']}`; git {env['git']}"
        + (f"; int4 and fp32 scores reused from {results['reused']}" if results.get("reused") else ""),
        f"- onnxruntime-genai {env['versions']['onnxruntime-genai']}, onnxruntime {env['versions']['onnxruntime']}; "
        f"llama.cpp: {env['llama.cpp'] or 'not run'}",
        "",
        *([f"**Note:** {results['note']}", ""] if results.get("note") else []),
        "| text | source | chars | sha256 |",
        "|---|---|---|---|",
        *(f"| {t['name']} | {t['source']} | {t['chars']} | `{t['sha256'][:16]}` |" for t in results["texts"]),
        "",
        "## Verdicts",
        "",
        "| model | int4 / fp32 | ≤ 1.03 | llama.cpp Q4_0 / F32 | int4 no worse | output matrix: ours, Q4_0's |",
        "|---|---|---|---|---|---|",
    ]
    for model_id, v in verdict.items():
        llama_ratio = f"{v['llama_q4_0_ratio']:.4f}" if "llama_q4_0_ratio" in v else "not run"
        llama_met = _yes(v["met_llama"]) if "met_llama" in v else "not run"
        model = results["models"][model_id]
        outputs = f"{output_type(model, 'int4')}, {output_type(model, 'Q4_0')}"
        lines.append(
            f"| {model_id} | {v['ratio']:.4f} | {_yes(v['met_target'])} | {llama_ratio} | {llama_met} | {outputs} |"
        )
    lines += ["", *(Path(__file__).with_name("reading.md").read_text().splitlines()), ""]
    for model_id, model in results["models"].items():
        lines += model_section(model_id, model, names, verdict[model_id])
    out.write_text("\n".join(lines))
    return "\n".join(lines[lines.index("## Verdicts") : lines.index("## Verdicts") + 4 + len(verdict)])
