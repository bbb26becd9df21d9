"""How many uploads one node serves at once, in all and per client, without I/O."""

from __future__ import annotations

from http import HTTPStatus

from ingest.openai_request import OpenAIError

BUSY_RETRY_S = 10
"""The ``Retry-After`` of a 429 for too many uploads at once (a short upload takes seconds)."""


class UploadSlot:
    """One upload's place; :meth:`release` gives it back (once, however often called)."""

    def __init__(self, slots: UploadSlots, client: str) -> None:
        self._slots = slots
        self._client = client
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._give_back(self._client)


class UploadSlots:
    def __init__(self, per_node: int, per_client: int) -> None:
        if per_node < 1 or per_client < 1:
            raise ValueError("upload slots must be at least 1")
        self._per_node = per_node
        self._per_client = per_client
        self._by_client: dict[str, int] = {}
        self.in_use = 0

    def take(self, client: str) -> UploadSlot:
        """A slot for ``client``, or OpenAI's 429 when the node or the client has none left."""
        if self.in_use >= self._per_node:
            raise _busy("this server is transcribing as many uploads as it can; retry later")
        if self._by_client.get(client, 0) >= self._per_client:
            raise _busy(
                f"at most {self._per_client} uploads of one client are transcribed at once; "
                "retry when one is done"
            )
        self._by_client[client] = self._by_client.get(client, 0) + 1
        self.in_use += 1
        return UploadSlot(self, client)

    def _give_back(self, client: str) -> None:
        self.in_use -= 1
        left = self._by_client[client] - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]


def _busy(message: str) -> OpenAIError:
    return OpenAIError(
        HTTPStatus.TOO_MANY_REQUESTS,
        message,
        kind="requests",
        code="rate_limit_exceeded",
        retry_after_s=BUSY_RETRY_S,
    )
