"""queue/routing.py and queue/schedule_file.py on their own: job types of an application that is
not docworkers' document pipeline, on queues of their own of a base queue (real Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.queue import JobFilter, RedisJobRepository
from docworkers.queue.routing import QueueRouter, RoutedQueues
from docworkers.queue.schedule_file import load_schedules


def test_routed_types_get_a_queue_of_their_own_and_the_rest_stay_on_the_base() -> None:
    router = QueueRouter("media", ["transcode", "thumbnail"])
    assert router.queue_for("transcode") == "media.transcode"
    assert router.queue_for("resize") == "media"  # not routed, and no known list: allowed
    assert router.queues == ("media", "media.transcode", "media.thumbnail")
    assert router.holding(["thumbnail", "resize"]) == ("media", "media.thumbnail")
    assert router.holding([]) == router.queues


def test_a_router_with_known_types_refuses_the_others_and_long_bases() -> None:
    router = QueueRouter("media", ["transcode"], known=["resize"])
    assert router.queue_for("resize") == "media" and router.queue_for("transcode") != "media"
    with pytest.raises(ConfigurationError) as unknown:
        router.queue_for("resise")
    assert unknown.value.field == "type" and "resize, transcode" in unknown.value.problem
    assert router.holding(["resise"]) == ("media",)  # reading never refuses a type
    with pytest.raises(ConfigurationError) as long:
        QueueRouter("m" * 120, ["transcode"]).queue_for("transcode")
    assert long.value.field == "queue" and "too long" in long.value.problem
    with pytest.raises(ConfigurationError):
        QueueRouter("bad name", [])


async def test_routed_queues_find_list_and_count_across_the_queues(
        repo: RedisJobRepository) -> None:
    repos: dict[str, RedisJobRepository] = {}

    def repository(queue: str) -> RedisJobRepository:
        return repos.setdefault(queue, repo.for_queue(queue))

    queues = RoutedQueues(QueueRouter(repo.queue, ["transcode"]), repository)
    video = await queues.for_type("transcode").enqueue("transcode", {"file": "a.mp4"})
    image = await queues.for_type("resize").enqueue("resize", {"file": "a.png"})
    assert (await queues.owner(video)).queue == f"{repo.queue}.transcode"
    assert (await queues.get_job(image)).queue == repo.queue
    assert [j.id for j in await queues.list_jobs(JobFilter(limit=10))] == [image, video]
    only = await queues.list_jobs(JobFilter.of(types=["transcode"]))
    assert [j.id for j in only] == [video]
    stats = await queues.stats()
    assert stats.queue == repo.queue and stats.by_status["queued"] == 2
    assert set(await queues.stats_by_queue()) == {repo.queue, f"{repo.queue}.transcode"}


def test_a_schedules_file_takes_the_applications_route_and_payload_check(
        tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text('[[schedules]]\nname = "nightly"\ntype = "transcode"\nevery = 60\n'
                    'payload = { file = "a.mp4" }\n')
    plain, = load_schedules(path)  # no route: the scheduler's own queue; payload as written
    assert (plain.queue, dict(plain.payload)) == (None, {"file": "a.mp4"})

    def check(job_type: str, payload: object) -> dict[str, object]:
        if not isinstance(payload, dict) or "codec" not in payload:
            raise InvalidPayloadError("codec: is required")
        return payload

    router = QueueRouter("media", ["transcode"])
    with pytest.raises(ConfigurationError) as caught:
        load_schedules(path, route=router.queue_for, check=check)
    assert caught.value.field == f"{path}: schedules[0].payload"
    assert "codec" in caught.value.problem
    path.write_text('[[schedules]]\nname = "nightly"\ntype = "transcode"\nevery = 60\n'
                    'payload = { file = "a.mp4", codec = "av1" }\n')
    routed, = load_schedules(path, route=router.queue_for, check=check)
    assert routed.queue == "media.transcode"
