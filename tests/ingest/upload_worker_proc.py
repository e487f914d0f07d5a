"""An upload worker process for kill tests, configured from DOCWORKERS_* variables."""

from __future__ import annotations

import asyncio

from docworkers.runtime import Runtime
from docworkers.settings import Settings


async def main() -> None:
    async with Runtime(Settings.from_env(env_file=None)) as runtime:
        worker = runtime.upload_worker("victim")
        await worker.start()
        print("ready", flush=True)
        await worker.wait()


if __name__ == "__main__":
    asyncio.run(main())
