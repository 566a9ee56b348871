"""Per-key limits: the limits model (model.py), the shared Redis counters (store.py), admission and token charging
(limiter.py), OpenAI's rate-limit headers (headers.py), per-key metrics (metrics.py), the ASGI door (middleware.py).
"""
