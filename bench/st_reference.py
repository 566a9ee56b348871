"""sentence-transformers in-process on the bench's texts: the embeddings reference. Runs in the model-build venv.

    BUILD_PYTHON bench/st_reference.py MODEL_DIR THREADS < {"texts": [...], "batch_sizes": [1, 32]}

Writes {"versions": ..., "sentences_per_s": {"1": ..., "32": ...}, "vectors": [...]} on stdout. Standalone on
purpose: torch lives only in that venv, never in the services' .venv.
"""

import json
import sys
import time

import sentence_transformers
import torch


def main() -> None:
    model_dir, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    request = json.load(sys.stdin)
    texts = request["texts"]
    model = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(texts[:8], normalize_embeddings=True)  # warm-up
    rates = {}
    for batch_size in request["batch_sizes"]:
        start = time.perf_counter()
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
        rates[str(batch_size)] = len(texts) / (time.perf_counter() - start)
    versions = {"sentence-transformers": sentence_transformers.__version__, "torch": torch.__version__}
    json.dump({"versions": versions, "sentences_per_s": rates, "vectors": vectors.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
