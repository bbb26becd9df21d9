"""The optional translator: an rq worker translating finals with Amazon Bedrock or an
OpenAI-compatible endpoint."""

import logging

logger = logging.getLogger("streamscribe.translator")
