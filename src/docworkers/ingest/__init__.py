"""The upload pipeline: parsers, chunkers, the embedding model, the vector store, UploadWorker.

Needs the ``ingest`` extra (``pip install 'docworkers[ingest]'``).
"""

from docworkers.extras import require_extra

require_extra("docworkers.ingest", "ingest")

from docworkers.ingest.light_overrides import install as _light_overrides  # noqa: E402

_light_overrides()  # before anything imports chromadb
