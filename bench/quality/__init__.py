"""The quality gate (`make quality`): perplexity of the served int4 models against their fp32 source and llama.cpp."""
