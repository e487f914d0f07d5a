"""/metrics counts the embedding cache's hits and misses of the uploads a process completed."""

from __future__ import annotations

from docworkers.api.metrics import ApiMetrics


def test_upload_results_feed_the_embedding_cache_counter() -> None:
    metrics = ApiMetrics()
    metrics.observe_upload_result("document_upload",
                                  {"embedding_cache": {"hits": 3, "misses": 2, "errors": 0}})
    metrics.observe_upload_result("document_upload",
                                  {"embedding_cache": {"hits": 4, "misses": 0, "errors": 1}})
    metrics.observe_upload_result("document_upload", {"embedding_cache": {}})  # no cache
    text = metrics.render(None).decode()
    assert 'docworkers_embedding_cache_texts_total{outcome="hit"} 7.0' in text
    assert 'docworkers_embedding_cache_texts_total{outcome="miss"} 2.0' in text
    assert 'docworkers_embedding_cache_texts_total{outcome="error"} 1.0' in text
