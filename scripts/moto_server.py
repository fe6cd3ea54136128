"""The moto server with every request handled under one lock.

moto does not serialize concurrent writes to one item the way DynamoDB does (two conditional
updates can both pass their condition), so concurrency tests against it would be flaky or would
test moto. Serializing every request is stronger than DynamoDB's per-item serialization, so what
passes here holds there. Arguments are moto_server's (-H HOST -p PORT).
"""

import sys
import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        # Materialize the body inside the lock: the WSGI iterable may still read moto's state.
        return list(_call(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main(sys.argv[1:])
