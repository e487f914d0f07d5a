"""The local stack behind the embedded defaults: shared private servers per data folder."""

from docworkers.stack.local import LocalStack, ServerStatus
from docworkers.stack.resolve import with_local_servers

__all__ = ["LocalStack", "ServerStatus", "with_local_servers"]
