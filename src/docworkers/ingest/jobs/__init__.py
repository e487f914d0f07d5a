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

Shared parts: :mod:`~.common` (payload base, DocumentJobConfig), :mod:`~.aliases` (logical to
physical collections, ``resolve_collection``, the rebuild lock), :mod:`~.files` (safe storage
of imported files, ``stored_file_path``).

A worker takes any job of its queue and fails the types it does not handle, so each of these
workers consumes a queue of its own (or one shared only with workers of the same types).

This ``__init__`` deliberately imports nothing: the upload pipeline imports
:mod:`~.aliases` and :mod:`~.files`, and the workers here import the pipeline, so eager
re-exports would make an import cycle. Import from the modules.
"""
