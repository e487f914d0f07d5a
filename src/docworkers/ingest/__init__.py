"""The upload pipeline: parsers, chunkers, the embedding model, the vector store, UploadWorker.

Needs the ``ingest`` extra (``pip install 'docworkers[ingest]'``).
"""

from docworkers.extras import require_extra

require_extra("docworkers.ingest", "ingest")
