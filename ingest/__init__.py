"""The WebSocket front door: protocol v1, audio into Redis, results back to clients."""

import logging

logger = logging.getLogger("streamscribe.ingest")
