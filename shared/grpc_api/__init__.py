"""The gRPC API's messages, generated from ``proto/streamscribe/v1/transcription.proto``.

Regenerate after changing the .proto (a test checks they match)::

    python -m grpc_tools.protoc -I proto/streamscribe/v1 --python_out=shared/grpc_api \\
        --pyi_out=shared/grpc_api proto/streamscribe/v1/transcription.proto
"""
