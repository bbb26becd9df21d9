"""A gRPC client of ``streamscribe.v1.Transcription`` that knows only the .proto.

Run with the modules ``grpc_tools.protoc`` generated from ``proto/streamscribe/v1`` on its
path (``tests/e2e/test_grpc.py`` generates them into a temporary folder): streams a WAV file
(16-bit mono) in real time or faster, and prints one JSON line per response, then one for
the call's status. Nothing of streamscribe's own code is imported.

It uses grpcio's blocking API: its asyncio client can report ``INTERNAL`` in place of the
server's status when a write is still on its way as the server ends the call
(grpc/grpc#36066).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from collections.abc import Iterator

import grpc
import transcription_pb2 as pb  # generated
import transcription_pb2_grpc as pb_grpc  # generated
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _print(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _requests(args: argparse.Namespace) -> Iterator[pb.StreamRequest]:
    config = pb.StreamConfig(
        sample_rate=args.rate or 0,
        language=args.language,
        vocabulary=args.vocabulary,
        room=args.room,
    )
    if args.no_partials:
        config.partials = False
    yield pb.StreamRequest(config=config)
    if args.second_config:
        yield pb.StreamRequest(config=config)
    with wave.open(args.file) as audio:
        chunk = audio.getframerate() // 10  # 100 ms
        sent = 0
        while frames := audio.readframes(chunk):
            yield pb.StreamRequest(audio=frames)
            sent += 1
            time.sleep(0.1 / args.speed)
            if args.finalize_every and sent % args.finalize_every == 0:
                yield pb.StreamRequest(finalize=pb.Finalize())
    if args.send_close:
        yield pb.StreamRequest(close=pb.Close())


def _health(channel: grpc.Channel, service: str) -> None:
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
        _print({"health": health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)})
    except grpc.RpcError as exc:
        _print({"status": exc.code().name, "details": exc.details()})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("file", nargs="?")
    parser.add_argument("--token", default="")
    parser.add_argument("--language", default="")
    parser.add_argument("--room", default="")
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--vocabulary", action="append", default=[])
    parser.add_argument("--no-partials", action="store_true")
    parser.add_argument("--second-config", action="store_true")
    parser.add_argument("--send-close", action="store_true")
    parser.add_argument("--finalize-every", type=int, default=0, help="every N chunks")
    parser.add_argument("--cancel-after", type=int, default=0, help="responses, then cancel")
    parser.add_argument("--health", default=None, help="only check this service's health")
    args = parser.parse_args()
    with grpc.insecure_channel(args.address) as channel:
        if args.health is not None:
            _health(channel, args.health)
            return
        metadata = (("authorization", f"Bearer {args.token}"),) if args.token else ()
        call = pb_grpc.TranscriptionStub(channel).Stream(_requests(args), metadata=metadata)
        received = 0
        try:
            for response in call:
                _print(MessageToDict(response, preserving_proto_field_name=True))
                received += 1
                if received == args.cancel_after:
                    call.cancel()
                    _print({"status": "CANCELLED by the client"})
                    return
        except grpc.RpcError as exc:
            trailing = dict(exc.trailing_metadata() or ())
            _print({"status": exc.code().name, "details": exc.details(), "trailing": trailing})
            return
        _print({"status": call.code().name, "trailing": dict(call.trailing_metadata() or ())})


if __name__ == "__main__":
    main()
