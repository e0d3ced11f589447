"""ArtifactStore.create_exclusive: of many concurrent creates of one key exactly one wins, on every store kind."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from cryptorl.storage import ArtifactStore

RACERS = 8


def race_with_threads(store_url: str, key: str) -> list[bool]:
    """RACERS threads create `key` at the same instant, each with its own content; who created it?"""
    start = Barrier(RACERS)

    def create(racer: int) -> bool:
        store = ArtifactStore(store_url)
        start.wait()
        return store.create_exclusive(key, f"racer {racer}".encode())

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(create, range(RACERS)))


def create_in_a_process(args: tuple[str, str, int]) -> bool:
    store_url, key, racer = args
    return ArtifactStore(store_url).create_exclusive(key, f"racer {racer}".encode())


def check_one_winner(store_url: str, key: str, created: list[bool]) -> None:
    assert created.count(True) == 1
    assert ArtifactStore(store_url).read_bytes(key) == f"racer {created.index(True)}".encode()  # the winner's, whole


def test_threads_racing_on_a_local_file_leave_one_winner_and_no_temporary_file(tmp_path):
    url = f"file://{tmp_path}"
    check_one_winner(url, "registry/x/versions/000001.json", race_with_threads(url, "registry/x/versions/000001.json"))
    assert ArtifactStore(url).list("registry") == ["registry/x/versions/000001.json"]


def test_processes_racing_on_a_local_file_leave_one_winner(tmp_path):
    url = f"file://{tmp_path}"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        created = pool.map(create_in_a_process, [(url, "v/000001.json", racer) for racer in range(RACERS)])
    check_one_winner(url, "v/000001.json", created)


def test_threads_racing_in_memory_leave_one_winner():
    check_one_winner("memory://exclusive", "v/000001.json", race_with_threads("memory://exclusive", "v/000001.json"))


def test_threads_racing_on_s3_leave_one_winner(s3_store):
    """moto honours S3's conditional PUT (If-None-Match: *), which s3fs sends for pipe_file(mode="create")."""
    check_one_winner(s3_store, "v/000001.json", race_with_threads(s3_store, "v/000001.json"))


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_repeated_create_with_the_same_bytes_counts_as_created_other_bytes_do_not(kind, tmp_path):
    store = ArtifactStore(f"file://{tmp_path}" if kind == "file" else "memory://exclusive-repeat")
    assert store.create_exclusive("k.json", b"mine")
    assert store.create_exclusive("k.json", b"mine")  # the retry of a create whose answer was lost
    assert not store.create_exclusive("k.json", b"theirs")
    assert store.read_bytes("k.json") == b"mine"


def add_lines_with_threads(store_url: str, key: str) -> None:
    """RACERS threads each append their own line to `key` through `ArtifactStore.update`, at the same instant."""
    ArtifactStore(store_url).write_bytes(key, b"")
    start = Barrier(RACERS)

    def add_line(racer: int) -> None:
        store = ArtifactStore(store_url)
        start.wait()
        store.update(key, lambda content: content + f"racer {racer}\n".encode())

    with ThreadPoolExecutor(RACERS) as pool:
        list(pool.map(add_line, range(RACERS)))


@pytest.mark.parametrize("kind", ["file", "memory", "s3"])
def test_concurrent_updates_of_one_key_lose_nothing(kind, tmp_path, request):
    """A read-change-write race loses no writer's change: a lock locally and in memory, If-Match on S3."""
    url = {"file": f"file://{tmp_path}", "memory": "memory://updates"}.get(kind) or request.getfixturevalue("s3_store")
    add_lines_with_threads(url, "data/lines.txt")
    lines = ArtifactStore(url).read_bytes("data/lines.txt").decode().splitlines()
    assert sorted(lines) == sorted(f"racer {racer}" for racer in range(RACERS))
