"""The launcher's questions about a cluster: a broker that does not know a topic yet is
asked again (each broker applies the controller's records at its own moment; a fresh
clone's CI once failed with `rf3-...[0] is not in the cluster's metadata` right after
`wait_in_sync` had seen the topic in sync through another broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.kafka import LocalKafkaCluster, PartitionState, probe


@pytest.fixture
def unstarted(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalKafkaCluster]:
    made = LocalKafkaCluster(nodes=3)  # nothing started: the questions are faked
    monkeypatch.setattr(made, "_live_bootstrap", lambda: "127.0.0.1:1,127.0.0.1:2")
    yield made
    made.close()


def test_a_broker_that_does_not_know_the_topic_yet_is_asked_again(
        unstarted: LocalKafkaCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[PartitionState | None] = [None, None, PartitionState(2, (1, 2, 3), (1, 2, 3))]

    async def partition_state(bootstrap: str, topic: str, partition: int = 0
                              ) -> PartitionState:
        answer = answers.pop(0)
        if answer is None:
            raise LookupError(f"{topic}[{partition}] is not in the cluster's metadata")
        return answer

    monkeypatch.setattr(probe, "partition_state", partition_state)
    assert unstarted.partition("rf3-new") == PartitionState(2, (1, 2, 3), (1, 2, 3))
    assert answers == []


def test_a_topic_no_broker_learns_of_is_still_a_lookup_error(
        unstarted: LocalKafkaCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def partition_state(bootstrap: str, topic: str, partition: int = 0
                              ) -> PartitionState:
        nonlocal calls
        calls += 1
        raise LookupError(f"{topic}[{partition}] is not in the cluster's metadata")

    monkeypatch.setattr(probe, "partition_state", partition_state)
    with pytest.raises(LookupError):
        unstarted.partition("absent", wait=0.5)
    assert calls >= 2
    calls = 0
    with pytest.raises(LookupError):
        unstarted.partition("absent", wait=0)
    assert calls == 1
