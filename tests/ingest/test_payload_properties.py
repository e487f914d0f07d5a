"""Property tests: any JSON a client sends either validates or fails with InvalidPayloadError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from docworkers.errors import InvalidPayloadError
from docworkers.ingest.chunking import CHUNKING_STRATEGIES
from docworkers.ingest.defaults import OCR_MODES
from docworkers.ingest.payload import UploadJobPayload

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=False), st.text(max_size=40))
field_values = {
    "filename": st.one_of(st.text(max_size=300), st.sampled_from(["a.pdf", "../x", ""])),
    "file_path": st.one_of(st.text(max_size=50), st.just("/tmp/a.pdf"),
                           st.just("s3://bucket/key")),
    "file_size": st.one_of(st.integers(-5, 10**9), json_scalars),
    "collection": st.one_of(st.text(max_size=20), st.sampled_from(["docs", "x", "a..b",
                                                                    "10.0.0.1", "risk-2024"])),
    "chunking_strategy": st.one_of(st.sampled_from(CHUNKING_STRATEGIES), st.text(max_size=10)),
    "chunk_size": st.one_of(st.integers(-10, 600), json_scalars),
    "chunk_overlap": st.one_of(st.integers(-10, 600), json_scalars),
    "extract_metadata": json_scalars,
    "num_questions": st.one_of(st.integers(-3, 15), json_scalars),
    "max_pages": st.one_of(st.integers(-3, 10**6), json_scalars),
    "ocr": st.one_of(st.sampled_from(OCR_MODES), st.sampled_from(["AUTO", "yes", " never"]),
                     json_scalars),
}
payloads = st.fixed_dictionaries(
    {"filename": field_values["filename"], "file_path": field_values["file_path"]},
    optional={**{k: v for k, v in field_values.items() if k not in ("filename", "file_path")},
              "unexpected": json_scalars},
)


@settings(max_examples=400, deadline=None)
@given(payloads)
def test_payload_validates_or_raises_a_named_field_error(data: dict[str, Any]) -> None:
    try:
        payload = UploadJobPayload.parse(data)
    except InvalidPayloadError as exc:
        message = str(exc)
        assert any(name in message for name in [*field_values, "unexpected", "payload"]), message
        return
    assert payload.filename and "/" not in payload.filename
    assert 0 <= payload.chunk_overlap < payload.chunk_size
    assert 0 <= payload.num_questions <= 10 and payload.max_pages >= 0
    assert payload.chunking_strategy in CHUNKING_STRATEGIES
    assert payload.ocr in OCR_MODES
    assert "unexpected" not in data  # unknown fields never pass silently


@given(st.one_of(st.lists(json_scalars), json_scalars))
def test_non_object_payloads_are_rejected(data: Any) -> None:
    try:
        UploadJobPayload.parse(data)
    except InvalidPayloadError as exc:
        assert "JSON object" in str(exc)
    else:
        raise AssertionError("a non-object payload was accepted")
