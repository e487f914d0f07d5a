"""What a caller asks for when it enqueues (docworkers.queue.spec): generated job ids and the
checks of a job's type and payload, shared by JobSpec and an enqueue with no options."""

from __future__ import annotations

import uuid

import pytest

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.queue import JobSpec
from docworkers.queue.spec import check_type_and_payload, encode_payload, new_job_id


def test_a_generated_id_is_the_hex_form_of_a_random_version_4_uuid() -> None:
    ids = [new_job_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        parsed = uuid.UUID(hex=job_id)
        assert parsed.hex == job_id and len(job_id) == 32
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Every other bit is random: over 2,000 ids each of the 122 free bits is set in some id and
    # clear in another (a bit stuck at 0 or 1 would show).
    numbers = [int(job_id, 16) for job_id in ids]
    fixed = (0xF << 76) | (0x3 << 62)
    for bit in range(128):
        if not fixed >> bit & 1:
            assert 0 < sum(n >> bit & 1 for n in numbers) < len(numbers), bit


@pytest.mark.parametrize(("job_type", "payload", "error", "match"), [
    ("", {}, ConfigurationError, "job type is required"),
    ("  ", {}, ConfigurationError, "job type is required"),
    (3, {}, ConfigurationError, "job type is required"),
    ("t", [1, 2], InvalidPayloadError, "JSON object"),
    ("t", "text", InvalidPayloadError, "JSON object"),
])
def test_type_and_payload_are_checked_alike_with_or_without_a_spec(
        job_type: object, payload: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_type_and_payload(job_type, payload)
    with pytest.raises(error, match=match):
        JobSpec(job_type, payload)  # type: ignore[arg-type]


def test_a_payload_is_compact_json_or_a_clear_error() -> None:
    assert encode_payload({"a": [1, 2.5], "b": "é"}) == '{"a":[1,2.5],"b":"\\u00e9"}'
    assert JobSpec("t", {"a": 1}).encoded_payload() == encode_payload({"a": 1})
    for bad in ({"x": object()}, {"x": float("nan")}):
        with pytest.raises(InvalidPayloadError, match="not JSON-serialisable"):
            encode_payload(bad)
