"""RequestRecord.connection: which requests shared a keep-alive connection."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from urlfleet.loopback import LoopbackProcess, LoopbackServer, RequestRecord, ServerSpec

pytestmark = pytest.mark.integration


def test_one_keep_alive_connection_one_number_a_new_one_a_new_number() -> None:
    with LoopbackServer(ServerSpec(hosts=2, latency=0)) as srv:
        with requests.Session() as first:
            first.get(srv.base_urls[0] + "/conn/a/1")
            first.get(srv.base_urls[0] + "/conn/a/2")
            first.get(srv.base_urls[1] + "/conn/a/3")  # another host: another connection
        with requests.Session() as second:
            second.get(srv.base_urls[0] + "/conn/b/1")
            second.get(srv.base_urls[0] + "/conn/b/2", headers={"Connection": "close"})
            second.get(srv.base_urls[0] + "/conn/b/3")  # the close forced a new connection
        numbers = [r.connection for r in srv.records("/conn/")]
        assert numbers == [1, 1, 2, 3, 3, 4]
        assert srv.stats()["connections"] == 4


def test_concurrent_clients_get_distinct_numbers() -> None:
    with LoopbackServer(ServerSpec(hosts=1, latency=0.05)) as srv:

        def client(i: int) -> None:
            with requests.Session() as s:
                for j in range(3):
                    s.get(f"{srv.base_urls[0]}/conn/c/{i}/{j}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        by_client: dict[str, set[int]] = {}
        for record in srv.records("/conn/c/"):
            by_client.setdefault(record.path.split("/")[3], set()).add(record.connection)
    assert all(len(numbers) == 1 for numbers in by_client.values())
    assert sorted(n for (n,) in by_client.values()) == [1, 2, 3, 4, 5, 6]


def test_json_round_trip_keeps_the_connection_and_reads_old_records() -> None:
    record = RequestRecord("127.0.0.1:1", "GET", "/x", 1.0, 2.0, 200, {"a": "b"}, 7)
    assert RequestRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    old = record.to_json()
    del old["connection"]  # as written before records had the field
    assert RequestRecord.from_json(old).connection == 0
    assert RequestRecord("h", "GET", "/", 0.0, 0.0, 200, {}).connection == 0


def test_child_process_records_carry_the_connection() -> None:
    with LoopbackProcess(ServerSpec(hosts=1, latency=0)) as server, requests.Session() as s:
        for i in range(3):
            s.get(f"{server.base_urls[0]}/conn/child/{i}")
        numbers = {r.connection for r in server.records("/conn/child/")}
    assert len(numbers) == 1 and numbers.pop() >= 1
