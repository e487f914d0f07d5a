"""What the job tests share: the real services, a way to ingest corpus files, a job runner."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from job_waits import until_finished

from docworkers.ingest.aliases import resolve_collection
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.jobs.common import DocumentJobConfig
from docworkers.ingest.payload import UploadJobPayload, UploadJobResult
from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
from docworkers.ingest.search import SearchService
from docworkers.ingest.stored_files import stored_file_path
from docworkers.ingest.vector_store import ChromaVectorRepository, SearchHit
from docworkers.queue import Job, RedisJobRepository
from docworkers.workers import BaseWorker, WorkerConfig

# Small real documents: on two cores the model embeds about one 256-token chunk per 0.4 s.
MEMO = "pdf/fake-memo.pdf"  # 53 tokens, declares the title "fake-memo"
MEMO_QUERY = "how many bottles of water and blankets were delivered"
NOTE = "text/fake-text.txt"  # 35 tokens
NOTE_QUERY = "hamburgers are delicious and dogs are the best"
LIST = "docx/simple.docx"  # 42 tokens, opens with a heading and declares no title
LIST_TITLE = "These are a few of my favorite things:"
RIGHTS = "text/eng_spa.txt"  # 379 tokens: 2 chunks of 256, more of 64
RIGHTS_QUERY = "all human beings are born free and equal in dignity and rights"
LOCKS = "dw:{documents}:lock:*"


@dataclass(slots=True)
class JobsEnv:
    """Real Redis, embedded Chroma in tmp_path, the real model and parser."""

    redis: redis.Redis
    jobs: RedisJobRepository  # the queue of the worker under test
    uploads: RedisJobRepository  # the upload workers' queue
    documents: DocumentRepository
    vectors: ChromaVectorRepository
    services: DocumentServices
    embedder: Embedder
    corpus: Path
    tmp: Path

    def config(self, **worker: Any) -> DocumentJobConfig:
        return DocumentJobConfig(worker=worker_config(**worker), job_repo=self.jobs,
                                 document_repo=self.documents, vector_repo=self.vectors,
                                 services=self.services)

    def stored(self, relative: str, folder: str = "uploads") -> Path:
        """A copy of a corpus file in tmp_path (the storage a worker reads)."""
        target = self.tmp / folder / Path(relative).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.corpus / relative, target)
        return target

    async def ingest(self, relative: str, collection: str = "docs", **options: Any
                     ) -> UploadJobResult:
        """Upload a corpus file with the real pipeline and record its stored file, as the
        pipeline will once it passes ``stored_file_path`` to the registry."""
        path = self.stored(relative)
        payload = UploadJobPayload.parse({"filename": path.name, "file_path": str(path),
                                          "collection": collection, **options})
        pipeline = UploadPipeline(self.services, self.documents, self.vectors)
        result = await pipeline.run(payload)
        await self.documents.update(result.document_id, file_path=stored_file_path(payload))
        return result

    async def search(self, collection: str, query: str, k: int = 3) -> list[SearchHit]:
        """Search the logical collection through its alias, as the API will."""
        physical = await resolve_collection(self.documents, collection)
        return await SearchService(self.embedder, self.vectors).search(physical, query, k=k)

    def collections(self) -> list[str]:
        return [info.name for info in self.vectors.list_collections()]

    def locks(self) -> list[str]:
        return sorted(self.redis.keys(LOCKS))  # type: ignore[arg-type]


def worker_config(**options: Any) -> WorkerConfig:
    options.setdefault("worker_name", "jobs-1")
    options.setdefault("poll_interval", 0.05)
    options.setdefault("retry_delay", 0.0)
    options.setdefault("max_retries", 0)
    return WorkerConfig(**options)


async def run_job(worker: BaseWorker, repo: RedisJobRepository, job_type: str,
                  payload: dict[str, Any]) -> Job:
    """Enqueue one job, run the worker until the job is finished, stop the worker."""
    job_id = await repo.enqueue(job_type, payload)
    async with worker:
        return await until_finished(repo, job_id)
