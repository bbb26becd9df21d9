"""The ``streamscribe`` command: ``up``, the parts one by one, ``stream`` and ``bench``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time

from shared.errors import ClientError, ConfigError, ModelLoadError
from shared.settings import Settings, load_settings, require_redis_url
from streamscribe import __version__, parts
from streamscribe.client import DEFAULT_URL, Received, read_audio, stream_audio
from streamscribe.console_lines import console_line
from streamscribe.options import model_options


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("websockets", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.launcher import LaunchOptions, run_up

    port = args.port if args.port is not None else settings.port
    grpc_port = settings.grpc_port if settings.grpc_port is not None else (port + 1 if port else 0)
    options = LaunchOptions(
        host=args.host or settings.host,
        port=port,
        grpc_port=None
        if args.no_grpc
        else (grpc_port if args.grpc_port is None else args.grpc_port),
        transcribers=args.transcribers or settings.transcribers,
        redis_url=settings.redis_url,
        translator=args.translator or settings.translator_enabled,
        upload_transcribers=settings.upload_transcribers,
    )
    return run_up(options)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    return parts.run_ingest(settings)


def cmd_segmenter(args: argparse.Namespace, settings: Settings) -> int:
    return parts.run_segmenter(settings)


def cmd_transcriber(args: argparse.Namespace, settings: Settings) -> int:
    return parts.run_transcriber(settings)


def cmd_translator(args: argparse.Namespace, settings: Settings) -> int:
    return parts.run_translator(settings)


def cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    audio = read_audio(args.file)
    live = sys.stderr.isatty()

    def show(received: Received) -> None:
        message = received.message
        if args.json:
            print(json.dumps(message, ensure_ascii=False), flush=True)
            return
        if message.get("type") == "transcript" and not message.get("is_final"):
            if live:
                print(f"\r\033[K… {message['text']}", end="", file=sys.stderr, flush=True)
            return
        line = console_line(message, in_room=bool(args.room))
        if line is not None:
            clear = "\r\033[K" if live and not line.startswith("error") else ""
            print(clear + line, file=sys.stderr, flush=True)

    params = {"partials": "true" if args.partials else "false"}
    for name in ("language", "room", "name", "translate", "token"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    run = asyncio.run(
        stream_audio(
            args.url,
            audio,
            speed=args.speed,
            params=params,
            on_message=show,
            fallback_urls=args.fallback_url,
        )
    )
    if not args.json:
        print(run.transcript, flush=True)
    if run.resumes:
        print(
            f"the connection dropped and the session resumed {run.resumes} time(s); "
            f"{run.audio_resent_s:.2f} s of audio sent again, {run.audio_lost_s:.2f} s lost",
            file=sys.stderr,
        )
    if run.close_code != 1000:
        print(f"session closed with {run.close_code} {run.close_reason}", file=sys.stderr)
        return 4
    return 0


def cmd_fetch_model(args: argparse.Namespace, settings: Settings) -> int:
    from transcriber.model import fetch_model

    print(fetch_model(args.model or settings.model), flush=True)
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.auth import mint_token
    from ingest.options import AuthOptions

    secret = settings.token_secret.get_secret_value()
    if not secret:
        raise ConfigError("STREAMSCRIBE_TOKEN_SECRET must be set to mint tokens")
    try:
        options = AuthOptions(secret)
    except ValueError as exc:
        raise ConfigError(f"STREAMSCRIBE_TOKEN_SECRET: {exc}") from exc
    print(
        mint_token(
            options,
            rooms=args.room or [],
            may_speak=not args.listen,
            ttl_s=parse_duration(args.ttl),
            subject=args.subject,
        ),
        flush=True,
    )
    return 0


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise ConfigError(f"not a duration: {text!r} (e.g. 90s, 15m, 1h, 2d)") from None
    if seconds <= 0:
        raise ConfigError(f"the duration must be positive, not {text!r}")
    return seconds


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from shared.redis_client import connect
    from streamscribe.status import read_status, render

    client = connect(args.redis_url or _status_redis_url(settings))
    while True:
        status = read_status(client)
        if args.json:
            print(status.to_json(), flush=True)
        else:
            clear = "\033[H\033[2J" if args.watch and sys.stdout.isatty() else ""
            print(clear + render(status), flush=True)
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)  # a screen refresh, not a work loop
        except KeyboardInterrupt:
            return 0


def _status_redis_url(settings: Settings) -> str:
    """REDIS_URL if set, else the Redis of the one ``streamscribe up`` running here."""
    if settings.redis_url:
        return require_redis_url(settings)
    from streamscribe.running import running

    ups = running()
    if len(ups) == 1:
        return ups[0].redis_url
    if not ups:
        raise ConfigError(
            "no streamscribe up is running here; give --redis-url (or REDIS_URL) of the "
            "pipeline to look at"
        )
    choices = ", ".join(f"{u.url} (--redis-url {u.redis_url})" for u in ups)
    raise ConfigError(f"several streamscribe up are running: {choices}; choose with --redis-url")


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.benchmarks.bench import BenchOptions, run_bench

    if args.find_capacity:
        from streamscribe.benchmarks.capacity import (
            DEFAULT_LEVELS,
            CapacityOptions,
            find_capacity,
            parse_variant,
        )

        find_capacity(
            CapacityOptions(
                manifest=args.manifest,
                batch_sizes=tuple(args.batch_sizes or [settings.batch_size]),
                latency_bound_s=args.latency_bound,
                window_s=args.window,
                levels=tuple(args.levels or DEFAULT_LEVELS),
                transcribers=args.transcribers or settings.transcribers,
                output=args.output if args.output != BENCH_OUTPUT else CAPACITY_OUTPUT,
                limit=args.limit,
                variants=tuple(parse_variant(v) for v in args.variant or ()),
            ),
            model=settings.model,
            device=settings.device,
        )
        return 0

    options = BenchOptions(
        manifest=args.manifest,
        url=args.url,
        grpc_url=args.grpc_url,
        concurrencies=tuple(args.concurrency),
        speed=args.speed,
        tail_silence_s=args.tail_silence,
        output=args.output,
        offline=not args.no_offline,
        limit=args.limit,
        transcribers=args.transcribers or settings.transcribers,
        faces=tuple(dict.fromkeys(args.faces)),
        paired=args.paired,
    )
    if options.paired and len(options.faces) < 2:
        raise ConfigError("--paired compares faces: name at least two with --faces")
    return run_bench(options, settings)


def cmd_bench_upload(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.benchmarks.uploads import UploadBenchOptions, run_upload_bench

    return run_upload_bench(
        UploadBenchOptions(
            manifest=args.manifest,
            minutes=args.minutes,
            concurrency=args.concurrency,
            live_limit=args.live_limit,
            transcribers=args.transcribers or settings.transcribers,
            output=args.output,
        ),
        settings,
    )


def cmd_bench_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.benchmarks.ingest_capacity import (
        IngestCapacityOptions,
        run_ingest_capacity,
    )

    run_ingest_capacity(
        IngestCapacityOptions(
            recording=args.recording,
            streams=args.streams,
            window_s=args.window,
            frame_ms=args.frame_ms,
            segmenters=args.segmenters,
            output=args.output,
        )
    )
    return 0


def cmd_bench_languages(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.benchmarks.language_id import LanguageBenchOptions, run_language_bench

    pairs = tuple((path, language) for path, language in (m.split("=", 1) for m in args.manifest))
    report = run_language_bench(
        LanguageBenchOptions(
            pairs,
            model=args.model,
            limit=args.limit,
            output=args.output,
            decode=not args.detect_only,
        ),
        settings,
    )
    for session in report["sessions"]:
        print(
            f"{session['language']}: detection alone {session['detection_accuracy_alone']:.0%},"
            f" with the prior {session['detection_accuracy_with_prior']:.0%}; WER named"
            f" {session['wer_language_named']}, chosen {session['wer_language_chosen']}",
            flush=True,
        )
    return 0


def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.benchmarks.soak import SoakOptions, run_soak

    return run_soak(
        SoakOptions(
            manifest=args.manifest,
            minutes=args.minutes,
            url=args.url,
            redis_url=args.redis_url,
            transcribers=args.transcribers or settings.transcribers,
            output=args.output,
            gap_s=args.gap,
            sample_every_s=args.sample_every,
        ),
        settings,
    )


def cmd_tune(args: argparse.Namespace, settings: Settings) -> int:
    from streamscribe.benchmarks.tuning import run_tune

    configs = [c.split(",") for c in args.config] if args.config else [[]]
    return run_tune(
        args.manifest,
        configs,
        model_options=model_options(settings),
        processes=args.processes,
        output=args.output,
        limit=args.limit,
        lead_s=args.turn_lead,
        prompt=not args.no_prompt,
        offline_cache=args.offline_cache,
        finals_as_partials=args.finals_as_partials,
        half=args.half,
    )


BENCH_OUTPUT = "bench-results/bench.json"
CAPACITY_OUTPUT = "bench-results/capacity.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamscribe", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole pipeline on this machine")
    up.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=None, help="listen port (default 8080)")
    up.add_argument("--transcribers", type=int, default=None, help="transcriber processes")
    up.add_argument("--translator", action="store_true", help="also run a translator")
    up.add_argument(
        "--grpc-port", type=int, default=None, help="the gRPC API's port (default: port + 1)"
    )
    up.add_argument("--no-grpc", action="store_true", help="serve no gRPC API")
    up.set_defaults(handler=cmd_up)

    for name, handler, text in (
        ("ingest", cmd_ingest, "run the WebSocket ingest node"),
        ("segmenter", cmd_segmenter, "run a segmenter worker"),
        ("transcriber", cmd_transcriber, "run a transcriber worker"),
        ("translator", cmd_translator, "run a translator (rq worker)"),
    ):
        part = sub.add_parser(name, help=text)
        part.set_defaults(handler=handler)

    stream = sub.add_parser("stream", help="stream an audio file to a server")
    stream.add_argument("file")
    stream.add_argument("--url", default=DEFAULT_URL)
    stream.add_argument(
        "--fallback-url",
        action="append",
        default=[],
        help="another ingest node to resume on when the connection drops (repeat)",
    )
    stream.add_argument("--speed", type=float, default=1.0, help="times real time")
    stream.add_argument("--language", default=None)
    stream.add_argument("--room", default=None, help="join this room")
    stream.add_argument("--name", default=None, help="your name in the room")
    stream.add_argument("--translate", default=None, help="target languages, e.g. cy,fr")
    stream.add_argument("--token", default=None, help="access token (streamscribe token)")
    stream.add_argument("--no-partials", dest="partials", action="store_false")
    stream.add_argument("--json", action="store_true", help="print every message as JSON")
    stream.set_defaults(handler=cmd_stream)

    _add_operations(sub)
    _add_bench(sub)
    _add_bench_upload(sub)
    _add_bench_ingest(sub)
    _add_bench_languages(sub)
    return parser


def _add_operations(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fetch = sub.add_parser(
        "fetch-model", help="download a model by name into the cache (none: do nothing)"
    )
    fetch.add_argument("model", nargs="?", default=None, help="default: STREAMSCRIBE_MODEL")
    fetch.set_defaults(handler=cmd_fetch_model)

    token = sub.add_parser("token", help="mint an access token (needs STREAMSCRIBE_TOKEN_SECRET)")
    token.add_argument(
        "--room", action="append", default=None, help="a room it grants (repeat; * for any)"
    )
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 2d")
    token.add_argument("--listen", action="store_true", help="may listen but not speak")
    token.add_argument("--subject", default="", help="who it is for (shown nowhere else)")
    token.set_defaults(handler=cmd_token)

    status = sub.add_parser("status", help="parts alive, sessions, queues, latency")
    status.add_argument("--redis-url", default=None, help="default: REDIS_URL")
    status.add_argument("--json", action="store_true")
    status.add_argument("--watch", type=float, default=0, metavar="SECONDS", help="repeat")
    status.set_defaults(handler=cmd_status)


def _add_bench_ingest(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench-ingest", help="real-time streams on one ingest process, no model (JSON out)"
    )
    bench.add_argument("--recording", required=True, help="16 kHz mono WAV, looped per stream")
    bench.add_argument("--streams", type=int, default=500)
    bench.add_argument("--window", type=float, default=60.0, help="seconds measured")
    bench.add_argument("--frame-ms", type=int, default=100)
    bench.add_argument("--segmenters", type=int, default=1)
    bench.add_argument("--output", default="bench-results/ingest-capacity.json")
    bench.set_defaults(handler=cmd_bench_ingest)


def _add_bench_languages(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench-languages", help="language detection per recording, with the prior (JSON out)"
    )
    bench.add_argument(
        "--manifest",
        action="append",
        required=True,
        metavar="MANIFEST=LANGUAGE",
        help="a speaker's recordings and their language (repeat: one session each)",
    )
    bench.add_argument("--model", default="base", help="a multilingual model")
    bench.add_argument("--limit", type=int, default=None, help="first N entries of each")
    bench.add_argument("--output", default="bench-results/language-id.json")
    bench.add_argument("--detect-only", action="store_true", help="no decoding (no WER)")
    bench.set_defaults(handler=cmd_bench_languages)


def _add_bench_upload(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench-upload", help="an uploaded recording while live streams run (JSON out)"
    )
    bench.add_argument("--manifest", required=True, help="manifest.jsonl with audio and text")
    bench.add_argument("--minutes", type=float, default=10.0, help="length of the recording")
    bench.add_argument("--concurrency", type=int, default=4, help="live streams at once")
    bench.add_argument("--live-limit", type=int, default=40, help="first N entries stream live")
    bench.add_argument("--transcribers", type=int, default=None)
    bench.add_argument("--output", default="bench-results/upload.json")
    bench.set_defaults(handler=cmd_bench_upload)


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from streamscribe.benchmarks.faces import FACES

    bench = sub.add_parser("bench", help="measure accuracy and latency on a manifest")
    bench.add_argument("--manifest", required=True, help="manifest.jsonl with audio and text")
    bench.add_argument("--url", default=None, help="server to measure (default: start one)")
    bench.add_argument(
        "--grpc-url", default=None, help="its gRPC API (grpc://host:port) for --faces grpc"
    )
    bench.add_argument("--concurrency", type=int, nargs="+", default=[1])
    bench.add_argument("--speed", type=float, default=1.0)
    bench.add_argument("--tail-silence", type=float, default=2.0)
    bench.add_argument("--limit", type=int, default=None, help="first N manifest entries")
    bench.add_argument("--transcribers", type=int, default=None)
    bench.add_argument("--no-offline", action="store_true", help="skip the offline ceiling")
    bench.add_argument(
        "--faces",
        nargs="+",
        choices=FACES,
        default=["v1"],
        help="the protocols to stream through, one after the other in one run",
    )
    bench.add_argument(
        "--paired",
        action="store_true",
        help="stream each recording through every face at once (one load for all faces); "
        "--concurrency counts the streams in all",
    )
    bench.add_argument("--output", default=BENCH_OUTPUT)
    bench.add_argument(
        "--find-capacity",
        action="store_true",
        help="raise concurrency until p95 final latency passes --latency-bound",
    )
    bench.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help="capacity: one search per transcriber batch size (0: by device)",
    )
    bench.add_argument("--latency-bound", type=float, default=2.0, help="capacity: seconds")
    bench.add_argument("--window", type=float, default=40.0, help="capacity: seconds per level")
    bench.add_argument("--levels", type=int, nargs="+", default=None, help="capacity: streams")
    bench.add_argument(
        "--variant",
        action="append",
        metavar="SETTINGS",
        help="capacity: one search under these settings, e.g. partial_model_share=1.0 "
        "(comma-separated; repeat to compare, in one run)",
    )
    bench.set_defaults(handler=cmd_bench)
    soak = sub.add_parser(
        "soak", help="one long session of continuous read speech: latency and memory over time"
    )
    soak.add_argument("--manifest", required=True, help="recordings to join (read speech)")
    soak.add_argument("--minutes", type=float, default=30.0)
    soak.add_argument("--gap", type=float, default=0.6, help="silence between recordings, s")
    soak.add_argument("--url", default=None, help="server to soak (default: start one)")
    soak.add_argument("--redis-url", default=None, help="with --url: its Redis, for memory")
    soak.add_argument("--transcribers", type=int, default=None)
    soak.add_argument("--sample-every", type=float, default=60.0, help="memory samples, s")
    soak.add_argument("--output", default="bench-results/soak.json")
    soak.set_defaults(handler=cmd_soak)
    tune = sub.add_parser(
        "tune", help="segmentation and turn settings scored by WER, faster than real time"
    )
    tune.add_argument("--manifest", required=True)
    tune.add_argument(
        "--config",
        action="append",
        help="comma-separated segmenter options, e.g. turn_gap_ms=800,hangover_ms=300 "
        "(repeat for several; none: the defaults)",
    )
    tune.add_argument("--processes", type=int, default=2)
    tune.add_argument("--limit", type=int, default=None)
    tune.add_argument("--turn-lead", type=float, default=0.2, help="silence before a turn, s")
    tune.add_argument("--no-prompt", action="store_true", help="turns without the prompt")
    tune.add_argument("--offline-cache", default=None, help="JSON of offline transcripts")
    tune.add_argument(
        "--finals-as-partials",
        action="store_true",
        help="decode each utterance as a partial is decoded (the fast WER is then theirs)",
    )
    tune.add_argument(
        "--half",
        choices=("tune", "report"),
        default=None,
        help="only that half of the speaker split (settings are chosen on 'tune')",
    )
    tune.add_argument("--output", default="bench-results/tune.json")
    tune.set_defaults(handler=cmd_tune)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        _setup_logging(settings.log_level)
        return int(args.handler(args, settings))
    except BrokenPipeError:  # e.g. `status --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConfigError as exc:
        print(f"streamscribe: configuration error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return 3
    except ModelLoadError as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return 5
