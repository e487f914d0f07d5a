"""The Redis plumbing of docworkers, in one place: every other module reaches Redis through it.

================  =========================================================================
module            owns
================  =========================================================================
``clients``       building sync and async clients from a URL, with one set of timeouts,
                  retries and health checks
``scripts``       loading the Lua scripts of any package (``<package>/lua/*.lua``), called by
                  SHA and reloaded on NOSCRIPT, alone or in a pipeline; the queue's script set
                  and the parse of the replies the repository reads
``errors``        translating redis-py's exceptions into docworkers errors
``keys``          every key name: a queue's, the limiters', a registry's (``{documents}``)
``packing``       hiredis command packing for asyncio connections
``cluster_url``   the ``redis+cluster://`` URL (``sentinel_url``: ``redis+sentinel://``;
                  ``addresses``: the ``host:port`` list both share)
``cluster``       what a Redis Cluster needs beyond a server: scripts loaded per node, the
                  waiter's connection to its queue's primary
================  =========================================================================

The priority score of the ready queue has one home too: ``ready_score`` in
``queue/lua/_lib.lua``. Python passes priorities, never scores.

Nothing here knows about documents: the ingest layer names its registry's tag.
"""
