"""streamscribe: real-time speech-to-text over WebSockets, with Redis workers."""

import logging

__version__ = "0.1.0"

logger = logging.getLogger("streamscribe.cli")
