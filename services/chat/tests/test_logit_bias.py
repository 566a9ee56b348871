"""logit_bias on the real model: -100 bans a token, +100 forces it (OpenAI's semantics)."""

from __future__ import annotations

import openai

MODEL_ID = "smollm2-135m-instruct"
PROMPT = "The three primary colours are"


def test_ban_and_force_tokens(client: openai.OpenAI, plain) -> None:
    greedy = plain.greedy(PROMPT, max_tokens=6)
    first = greedy[0]
    banned = client.completions.create(
        model=MODEL_ID, prompt=PROMPT, temperature=0, max_tokens=6, logit_bias={str(first): -100}
    )
    unbiased = plain.decode(greedy)
    assert banned.choices[0].text != unbiased
    assert not banned.choices[0].text.startswith(plain.decode([first]))
    forced_token = plain.encode(" banana")[0]
    forced = client.completions.create(
        model=MODEL_ID, prompt=PROMPT, temperature=0, max_tokens=3, logit_bias={str(forced_token): 100}
    )
    assert forced.choices[0].text == plain.decode([forced_token] * 3)
