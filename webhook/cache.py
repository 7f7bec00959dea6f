"""Remember the engine's findings per policy text, so unchanged policies cost a hash.

The engine is a pure function of the bytes, and the same policy text is judged again and
again: `kubectl apply` of an unchanged ConfigMap, a dry run followed by the real write,
an UPDATE that only touched another key, API server retries. Entries are keyed by the
SHA-256 of the text (the text itself is not kept), bounded in number, least recently used
evicted; thread-safe for gthread workers. Each worker process has its own.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from kubectl_audit.policy.model import Finding

Findings = tuple[tuple[Finding, ...], tuple[Finding, ...]]  # (errors, warnings)


class FindingsCache:
    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[bytes, Findings] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(content: bytes) -> bytes:
        return hashlib.sha256(content).digest()

    def get(self, key: bytes) -> Findings | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: bytes, findings: Findings) -> None:
        if self.entries <= 0:
            return
        with self._lock:
            self._items[key] = findings
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
