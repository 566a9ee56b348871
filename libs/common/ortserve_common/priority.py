"""Which requests take scarce slots first: a key's priority, set by the proxy from the key's limits.

`interactive` requests (a person waiting on the answer) are admitted before queued `batch` ones (bulk jobs that are
judged by their throughput, not by their first token), and a service may keep some of its places for interactive
requests only, so that a batch flood cannot hold every one of them.
"""

from __future__ import annotations

from typing import Literal, get_args

Priority = Literal["interactive", "batch"]
# In the order queued requests are served; a request that names none is interactive, as every request was before.
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
DEFAULT_PRIORITY: Priority = "interactive"
# What the proxy sends the services: the checked key's priority (it overwrites whatever a client sent).
PRIORITY_HEADER = "X-Ortserve-Key-Priority"
