"""The stages' own partitioner must put a key where every other Kafka producer puts it."""

import os
import random

from aiokafka.partitioner import DefaultPartitioner, murmur2 as aiokafka_murmur2

from worker.produce import murmur2, partition_of


def test_keys_land_in_the_partition_the_default_partitioner_picks():
    rng = random.Random(7)
    keys = [os.urandom(rng.randrange(0, 90)) for _ in range(5000)] + [b"", b"E.abc", "tt-é".encode()]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key)
        for partitions in (1, 4, 12):
            assert partition_of(key, partitions) == DefaultPartitioner()(key, list(range(partitions)), [])


def test_a_record_without_a_key_gets_a_partition_of_the_topic():
    assert {partition_of(None, 3) for _ in range(200)} == {0, 1, 2}
