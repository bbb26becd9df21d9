"""Voice-activity segmentation: cuts each session's audio into utterance jobs."""

import logging

logger = logging.getLogger("streamscribe.segmenter")
