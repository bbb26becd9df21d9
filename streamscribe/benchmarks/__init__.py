"""Benchmarking: ``bench`` (WER and latency through a running pipeline), ``bench
--find-capacity``, ``soak`` and ``tune`` (the segmenter and model in process), and the scoring
they share (``metrics``). Nothing outside this package imports it but the command line."""
