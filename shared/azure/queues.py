"""Storage queues the gateway writes: failure alerts for on-call, and per-target poll work.

Messages are base64 text, which is what a Functions queue trigger decodes by default, and never
expire (``time_to_live=-1``): an alert nobody has read yet must not vanish after seven days.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.azure.storage import CLIENT_OPTIONS, storage_errors
from shared.errors import ConfigurationError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

_guarded = partial(storage_errors, what="the queue", role="Storage Queue Data Contributor")


@dataclass(frozen=True)
class Received:
    """A message taken out of sight for a while: delete it once handled, or release it for others."""

    id: str
    pop_receipt: str
    text: str
    inserted_on: datetime | None
    dequeue_count: int

    def json(self) -> Any:
        return json.loads(self.text)


class JsonQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client

    @property
    def name(self) -> str:
        return str(self._client.queue_name)

    @classmethod
    def connect(
        cls, *, queue_name: str, endpoint: str | None, connection_string: str | None, credential: TokenCredential
    ) -> JsonQueue:
        from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

        encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()
        if endpoint:
            client = QueueClient(
                account_url=endpoint,
                queue_name=queue_name,
                credential=credential,
                message_encode_policy=encode,
                message_decode_policy=decode,
                **CLIENT_OPTIONS,
            )
        elif connection_string:
            client = QueueClient.from_connection_string(
                connection_string,
                queue_name,
                message_encode_policy=encode,
                message_decode_policy=decode,
                **CLIENT_OPTIONS,
            )
        else:
            raise ConfigurationError(
                "No queue endpoint: set GATEWAY_STORAGE__queueServiceUri "
                "(identity-based) or GATEWAY_STORAGE (connection string)."
            )
        return cls(client)

    def ensure_queue(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with _guarded("be created"), suppress(ResourceExistsError):
            self._client.create_queue()

    def send(self, message: dict[str, Any]) -> None:
        with _guarded("accept the message"):
            self._client.send_message(json.dumps(message, separators=(",", ":")), time_to_live=-1)

    def peek(self, limit: int = 32) -> list[dict[str, Any]]:
        """Messages waiting, without taking them (the Storage API shows at most 32)."""
        with _guarded("be read"):
            messages = self._client.peek_messages(max_messages=min(limit, 32))
        return [json.loads(message.content) for message in messages]

    def count(self) -> int:
        """About how many messages wait (Storage's estimate); 0 for a queue nobody has created yet."""
        from azure.core.exceptions import ResourceNotFoundError

        with _guarded("be read"):
            try:
                properties = self._client.get_queue_properties()
            except ResourceNotFoundError:
                return 0
        return int(properties.approximate_message_count or 0)

    def receive(self, limit: int = 32, *, visibility_timeout: int = 30) -> list[Received]:
        """Up to ``limit`` messages, hidden from other readers for ``visibility_timeout`` seconds.

        Unlike ``peek`` this sees past the first 32 messages, at the cost of hiding them meanwhile and
        counting a dequeue on each, so a reader must ``delete`` or ``release`` every one.
        """
        with _guarded("be read"):
            messages = self._client.receive_messages(
                messages_per_page=min(limit, 32), max_messages=limit, visibility_timeout=visibility_timeout
            )
            return [
                Received(
                    id=message.id,
                    pop_receipt=message.pop_receipt or "",
                    text=str(message.content),
                    inserted_on=message.inserted_on,
                    dequeue_count=message.dequeue_count or 0,
                )
                for message in messages
            ]

    def delete(self, message: Received) -> None:
        with _guarded("delete the message"):
            self._client.delete_message(message.id, message.pop_receipt)

    def release(self, message: Received) -> None:
        """Makes a received message visible again at once, unchanged."""
        with _guarded("release the message"):
            self._client.update_message(message.id, message.pop_receipt, visibility_timeout=0)
