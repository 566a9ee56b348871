"""The stack on a three-node Docker Swarm (node containers; tools/cluster.py), black box through nginx with the OpenAI
SDK: requests reach replicas on every node, a conversation continues on whichever replica serves the next turn,
a rolling update and a drain under a load of streams fail nothing, and a killed worker node loses only the streams
that were on it. The scenarios share one cluster and run in file order (the node kill comes last but one).

Waits poll a condition against generous deadlines; nothing assumes a speed. Each scenario prints its counts (-s).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_testing import CHAT_MODEL, EMBEDDING_MODEL, STACK, ClusterStack, StreamLoad, cluster_prefix
from compose_testing import ROOT, docker
from ortserve_testing.processes import free_port

# The first test also waits for the cluster to come up (minutes on a busy machine): a timeout for that.
pytestmark = [pytest.mark.stack, pytest.mark.cluster, pytest.mark.timeout(1800)]
DEADLINE_S = 300  # a generous bound for anything the swarm does (start, reschedule, update) on a busy machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no Docker engine answers: `make docker-engine` installs and starts one (make test does)")
    # The images under the cluster's own tag (from the engine's cache when make images built them already).
    images = [str(ROOT / "tools/docker/images.sh")]
    subprocess.run(images, env={**os.environ, "ORTSERVE_TAG": "cluster"}, check=True, capture_output=True, timeout=1800)
    port = int(os.environ.get("CLUSTER_HTTPS_PORT") or free_port())
    # ORTSERVE_CLUSTER_DIR: the keys of a cluster already up (make cluster-up's run/cluster), to test it as it is.
    run_dir = Path(os.environ.get("ORTSERVE_CLUSTER_DIR") or tmp_path_factory.mktemp("cluster")).resolve()
    stack = ClusterStack(run_dir, cluster_prefix(), port)
    try:
        yield stack.up()
    finally:
        if not os.environ.get("ORTSERVE_KEEP_CLUSTER"):
            stack.down()


def test_replicas_on_every_node_serve_and_models_lists_their_nodes(cluster: ClusterStack) -> None:
    nodes = {f"{cluster.prefix}-node{i}" for i in (1, 2, 3)}
    cluster.wait_until(
        "/v1/models: 3 chat replicas, one per node",
        lambda: set(cluster.card(CHAT_MODEL).get("replica_nodes", [])) == nodes,
        DEADLINE_S,
    )
    cluster.wait_until(
        "/v1/models: 2 embeddings replicas on 2 nodes",
        lambda: len(set(cluster.card(EMBEDDING_MODEL).get("replica_nodes", []))) == 2,
        DEADLINE_S,
    )
    client = cluster.openai()
    # Which node served each stream: the proxy's log names the upstream address, the swarm the task behind it.
    node_of = {ip: task["node"] for task in cluster.tasks("chat") for ip in task["ips"]}

    def served_by(load: StreamLoad) -> set[str | None]:
        upstreams = cluster.upstreams()
        return {node_of.get(upstreams.get(o.trace_id, "").split(":")[0]) for o in load.completed()}

    # nginx picks a replica at random (its resolver rotates the cached addresses for each request), so how many
    # streams it takes before every node has served one is chance: 14 streams missed one node in a CI run (about 2 in
    # 100 runs do). Wait for every node instead of counting; a node the overlay cannot reach still fails the test.
    with StreamLoad(client, workers=2, max_tokens=4) as load:
        cluster.wait_until(
            "nine streams completed, replicas on every node among their servers",
            lambda: len(load.completed()) >= 9 and nodes <= served_by(load),
            DEADLINE_S,
        )
    served = served_by(load)
    vectors = client.embeddings.create(model=EMBEDDING_MODEL, input=["one", "two", "three", "four"])
    assert len(vectors.data) == 4
    counts = f"{len(load.completed())} streams, {len(load.failed())} failed"
    print(f"\n[cluster] {counts}, served by {sorted(map(str, served))}")
    assert not load.failed(), [o.error for o in load.failed()]
    assert nodes <= served  # the manager's proxy reached a replica on every node, over the overlay


def test_a_conversation_continues_on_whichever_replica_serves_the_next_turn(cluster: ClusterStack) -> None:
    client = cluster.openai()
    conversation = client.conversations.create()
    # Turns go on until replicas on two nodes have served them (nginx picks the replica; at most 12 turns).
    node_of = {ip: task["node"] for task in cluster.tasks("chat") for ip in task["ips"]}
    nodes: list[str | None] = []
    while len(set(nodes) - {None}) < 2 and len(nodes) < 12:
        trace = uuid.uuid4().hex
        client.responses.create(
            model=CHAT_MODEL,
            conversation=conversation.id,
            input=f"Remember the number {len(nodes)}.",
            max_output_tokens=8,
            extra_headers={"traceparent": f"00-{trace}-{trace[:16]}-01"},
        )
        nodes.append(node_of.get(cluster.upstreams().get(trace, "").split(":")[0]))
    items = client.conversations.items.list(conversation.id, limit=100).data
    # Every turn's input is in the one conversation, whichever replica (and node) wrote it.
    user_turns = [item for item in items if getattr(item, "role", None) == "user"]
    print(f"\n[cluster] conversation: {len(nodes)} turns on {nodes}: {len(items)} items, {len(user_turns)} user turns")
    assert len(set(nodes) - {None}) >= 2  # the turns really crossed replicas on different nodes
    assert len(user_turns) == len(nodes)


def test_a_rolling_update_under_load_fails_no_stream(cluster: ClusterStack) -> None:
    nodes = cluster.swarm("node", "ls", "--format", "{{.Hostname}}").split()
    for node in nodes:  # the "new image": the same image under a new tag, on every node (no registry)
        docker("exec", node, "docker", "tag", "ortserve-chat:cluster", "ortserve-chat:cluster-next")
    with StreamLoad(cluster.openai(), workers=3) as load:
        cluster.swarm(
            "service", "update", "--detach=false", "--quiet", "--image", "ortserve-chat:cluster-next",
            "--update-parallelism", "1", "--update-order", "start-first", f"{STACK}_chat", timeout=DEADLINE_S * 2,
        )  # fmt: skip
        cluster.wait_until("3 chat replicas registered", lambda: cluster.card(CHAT_MODEL).get("replicas") == 3)
    print(f"\n[cluster] rolling update: {len(load.completed())} streams completed, {len(load.failed())} failed")
    assert load.completed() and not load.failed(), [o.error for o in load.failed()]


def test_draining_a_node_moves_its_replicas_and_fails_no_stream(cluster: ClusterStack) -> None:
    node = f"{cluster.prefix}-node2"
    with StreamLoad(cluster.openai(), workers=3) as load:
        cluster.swarm("node", "update", "--availability", "drain", node)
        cluster.wait_until(
            f"no chat or embeddings task left on {node}, 3 chat replicas running",
            lambda: (
                node not in cluster.running_nodes("chat") + cluster.running_nodes("embeddings")
                and len(cluster.running_nodes("chat")) == 3
            ),
            DEADLINE_S,
        )
        cluster.wait_until(
            f"/v1/models: 3 chat replicas, none on {node}",
            lambda: (cards := cluster.card(CHAT_MODEL)).get("replicas") == 3 and node not in cards["replica_nodes"],
            DEADLINE_S,
        )
    cluster.swarm("node", "update", "--availability", "active", node)
    print(f"\n[cluster] drain: {len(load.completed())} streams completed, {len(load.failed())} failed")
    assert load.completed() and not load.failed(), [o.error for o in load.failed()]


def test_a_killed_node_loses_only_its_own_streams(cluster: ClusterStack) -> None:
    victim = f"{cluster.prefix}-node3"
    cluster.wait_until(f"a chat replica on {victim}", lambda: victim in cluster.running_nodes("chat"), DEADLINE_S)
    victim_ips = {ip for task in cluster.tasks("chat") if task["node"] == victim for ip in task["ips"]}
    with StreamLoad(cluster.openai(), workers=4) as load:
        cluster.wait_until("streams flowing", lambda: len(load.completed()) >= 4, DEADLINE_S)
        # Where the replicas are: a start-first rolling update and a drain leave the spread uneven (2 of 3 on one
        # node is common), and the swarm does not move them back.
        placement = cluster.running_nodes("chat")
        killed_at = time.monotonic()
        docker("kill", victim)
        cluster.wait_until(
            "the registry lists 3 chat replicas again, none on the dead node",
            lambda: (card := cluster.card(CHAT_MODEL)).get("replicas") == 3 and victim not in card["replica_nodes"],
            DEADLINE_S,
        )
        cluster.wait_until(
            "4 streams completed after the swarm healed",
            lambda: sum(1 for o in load.completed() if o.started > time.monotonic() - 60) >= 4,
            DEADLINE_S,
        )
    healed_s = time.monotonic() - killed_at
    logged = cluster.access_log()
    upstreams = {rid: entry["upstream"] for rid, entry in logged.items()}
    failed, after = load.failed(), [o for o in load.failed() if o.started > killed_at]
    on_victim = [o for o in failed if upstreams.get(o.trace_id, "").split(":")[0] in victim_ips]
    slowest_failure_s = max((o.ended - killed_at for o in failed), default=0.0)
    survivors = [node for node in placement if node != victim]
    print(
        f"\n[cluster] node kill: chat replicas on {placement}; {len(load.completed())} streams completed, "
        f"{len(failed)} lost ({len(on_victim)} on the dead node, {len(after)} started after the kill); the last "
        f"loss ended {slowest_failure_s:.1f} s after the kill; 3 replicas listed again {healed_s:.0f} s after it"
    )
    # Each loss and each request nginx had to retry, with what it tried, for a failure to explain itself.
    retried = [o for o in load.outcomes if "," in upstreams.get(o.trace_id, "")]
    for o in sorted({id(o): o for o in failed + retried}.values(), key=lambda o: o.started):
        entry = logged.get(o.trace_id, {})
        print(
            f"[cluster]   {o.started - killed_at:+.1f} s to {o.ended - killed_at:+.1f} s: "
            f"{entry.get('status')} from {entry.get('upstream')} ({entry.get('upstream_status')}; dead node: "
            f"{sorted(victim_ips)}) {o.error[:80]}"
        )
    before = [o for o in failed if o.started <= killed_at]
    assert all(o in on_victim for o in before)  # the streams lost at the kill were all on the dead node
    # A request sent after the kill still meets the dead node's addresses: Docker's DNS lists them for about 11 s,
    # dropping one at a time, and nginx tries each for its 5 s connect timeout before the next (the retries above).
    if survivors:
        assert not after  # a replica on another node stayed in every answer, and each such request reached it
    else:
        # Every replica was on the dead node, so nothing could serve until the swarm started new ones. (A CI run lost
        # one request sent after the kill: a 502 after exactly one 5 s connect timeout, as an answer holding one dead
        # address and no live one gives.) Such a request must be nginx's own retryable refusal (502/504 with
        # Retry-After), which no replica ever accepted.
        for outcome in after:
            statuses = logged.get(outcome.trace_id, {}).get("upstream_status", "")
            assert "200" not in statuses and ("502" in outcome.error or "504" in outcome.error), (outcome, statuses)
    # No hang: a lost stream ends on the proxy's TCP keepalive (about 11 s), far below its hour-long read timeout.
    assert slowest_failure_s < 120
