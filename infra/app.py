"""``cdk deploy --app "python -m infra.app"``: the stack configured by ``.env``."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import InfraConfig, load_config
from infra.nag import explain_findings
from infra.stack import StreamscribeStack


def build_app(
    app: cdk.App | None = None,
    config: InfraConfig | None = None,
    *,
    env: cdk.Environment | None = None,
) -> tuple[cdk.App, StreamscribeStack]:
    """The app with its one stack, checked by cdk-nag's AwsSolutions pack on synthesis."""
    app = app or cdk.App()
    config = config or load_config()
    stack = StreamscribeStack(
        app,
        "Streamscribe",
        config=config,
        env=env
        or cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    explain_findings(stack, translator=config.translator_enabled)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
