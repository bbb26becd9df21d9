"""Parts shared by every streamscribe process: schemas, settings, Redis helpers, errors."""

import logging

logger = logging.getLogger("streamscribe")
