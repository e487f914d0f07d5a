"""Document jobs beyond uploads, one module and one worker per job type.

==================  ==========================================  =============================
job type            module                                      worker
==================  ==========================================  =============================
document_delete     :mod:`~.document_delete`                    DocumentDeleteWorker
collection_delete   :mod:`~.collection_delete`                  CollectionDeleteWorker
metadata_extract    :mod:`~.metadata_extract`                   MetadataExtractWorker
vector_reindex      :mod:`~.vector_reindex`                     VectorReindexWorker
bulk_import         :mod:`~.bulk_import`                        BulkImportWorker
==================  ==========================================  =============================

The types are declared in :mod:`~.kinds` (names, what front doors need to know of each, their
queues, light enough for the command line's start-up) and :mod:`~.payloads` (each type's
payload model, validation). Shared parts: :mod:`~.common` (payload base, DocumentJobConfig).
The infrastructure these
jobs share with the upload pipeline lives in the ingest core: :mod:`docworkers.ingest.aliases`
(logical to physical collections, ``resolve_collection``, the rebuild lock) and
:mod:`docworkers.ingest.stored_files` (safe storage of imported files, ``stored_file_path``).

A worker takes any job of its queue and fails the types it does not handle, so each of these
workers consumes a queue of its own (or one shared only with workers of the same types): the
queue package's router (:mod:`docworkers.queue.routing`) derives them from a base queue.

This ``__init__`` deliberately imports nothing: the workers here import the pipeline, and
the pipeline must not load them. Import from the modules.
"""
