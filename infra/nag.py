"""cdk-nag AwsSolutions findings that are accepted, each with its reason.

Everything else the pack reports fails the tests (``tests/infra``).
"""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions


def _suppress(stack: Stack, path: str, rule: str, reason: str, *applies_to: str) -> None:
    NagSuppressions.add_resource_suppressions_by_path(
        stack,
        f"/{stack.stack_name}/{path}",
        [NagPackSuppression(id=rule, reason=reason, applies_to=list(applies_to) or None)],
        apply_to_children=True,
    )


def explain_findings(stack: Stack, *, translator: bool) -> None:
    tasks = ["IngestTask", "SegmenterTask", "TranscriberTask"] + (
        ["TranslatorTask"] if translator else []
    )
    for task in tasks:
        _suppress(
            stack,
            f"{task}/Resource",
            "AwsSolutions-ECS2",
            "Only non-secret settings (Redis endpoint, model name, ports, metric namespace) are "
            "environment variables; the Redis AUTH token comes from Secrets Manager.",
        )
        _suppress(
            stack,
            f"{task}/ExecutionRole/DefaultPolicy/Resource",
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken has no resource-level permissions; CDK scopes the rest "
            "to the image repository and log group.",
            "Resource::*",
        )
    _suppress(
        stack,
        "GpuInstanceRole/Resource",
        "AwsSolutions-IAM4",
        "The ECS container-instance and SSM core policies are the documented, maintained "
        "minimum for ECS GPU container instances.",
        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
        "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore",
    )
    _suppress(
        stack,
        "GpuInstanceRole/DefaultPolicy/Resource",
        "AwsSolutions-IAM5",
        "Written by CDK for the ECS agent (ecs:Submit* on the cluster, ecr token and "
        "ecs:DiscoverPollEndpoint, which have no resource-level permissions).",
        "Action::ecs:Submit*",
        "Resource::*",
    )
    _suppress(
        stack,
        "GpuInstances/ASG",
        "AwsSolutions-AS3",
        "The group is driven by the ECS capacity provider; its scaling shows in ECS service "
        "events and CloudWatch, so SNS notifications would only duplicate them.",
    )
    _suppress(
        stack,
        "Redis/AuthToken/Resource",
        "AwsSolutions-SMG4",
        "Rotating an ElastiCache AUTH token needs a ROTATE then SET modify of the replication "
        "group and a task restart; it is a documented manual procedure (README), not a "
        "Secrets Manager schedule.",
    )
    _suppress(
        stack,
        "TokenSecret/Resource",
        "AwsSolutions-SMG4",
        "Rotating the token signing key invalidates every token in circulation; it is rotated "
        "by hand with new tokens issued (README), not on a schedule.",
    )
    _suppress(
        stack,
        "LoadBalancerLogs/Resource",
        "AwsSolutions-S1",
        "This bucket holds the load balancer's access logs; logging it to itself would loop.",
    )
    _suppress(
        stack,
        "Ingest/LB/SecurityGroup/Resource",
        "AwsSolutions-EC23",
        "The public load balancer accepts HTTPS (443) and redirects HTTP (80) from anyone: "
        "it is the service's front door.",
    )
