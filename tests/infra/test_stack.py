"""The CDK app synthesized offline, asserted on what a deployment depends on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.app import build_app
from infra.config import NAMESPACE, InfraConfig, ServiceCounts, load_config
from infra.stack import StreamscribeStack
from shared.errors import ConfigError
from tests.deploy.checks import assert_real_command, assert_real_settings

ENV = cdk.Environment(account="123456789012", region="eu-west-2")
CONFIG = InfraConfig(
    host_name="live",
    domain_name="example.com",
    hosted_zone_id="Z0123456789ABCDEFGHIJ",
    translator_enabled=True,
    bedrock_model_id="amazon.nova-micro-v1:0",
    transcriber=ServiceCounts(1, 6),
)


def synth(config: InfraConfig) -> tuple[StreamscribeStack, Template]:
    app = cdk.App()
    _, stack = build_app(app, config, env=ENV)
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def synthesized() -> tuple[StreamscribeStack, Template]:
    return synth(CONFIG)


@pytest.fixture(scope="module")
def template(synthesized: tuple[StreamscribeStack, Template]) -> Template:
    return synthesized[1]


def containers(template: Template) -> dict[str, dict[str, Any]]:
    found = {}
    for task in template.find_resources("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            found[container["Name"]] = container
    return found


def test_each_part_is_its_own_service(template: Template) -> None:
    assert sorted(containers(template)) == ["ingest", "segmenter", "transcriber", "translator"]
    template.resource_count_is("AWS::ECS::Service", 4)
    for name, container in containers(template).items():
        assert_real_command(container["Command"], where=f"task {name}")


def test_the_transcriber_asks_for_one_gpu_on_the_gpu_capacity_provider(template: Template) -> None:
    assert containers(template)["transcriber"]["ResourceRequirements"] == [
        {"Type": "GPU", "Value": "1"}
    ]
    providers = template.find_resources("AWS::ECS::CapacityProvider")
    [(provider_id, provider)] = providers.items()
    asg_provider = provider["Properties"]["AutoScalingGroupProvider"]
    assert asg_provider["ManagedTerminationProtection"] == "DISABLED"
    assert asg_provider["ManagedScaling"]["Status"] == "ENABLED"
    template.has_resource_properties(
        "AWS::ECS::Service",
        {"CapacityProviderStrategy": [{"CapacityProvider": {"Ref": provider_id}, "Weight": 1}]},
    )
    template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {"LaunchTemplateData": Match.object_like({"InstanceType": "g4dn.xlarge"})},
    )
    parameters = json.dumps(template.to_json()["Parameters"])
    assert "amazon-linux-2/gpu/recommended" in parameters  # the ECS GPU-optimized AMI


def test_ingest_is_behind_https_with_a_validated_certificate(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CertificateManager::Certificate",
        {
            "DomainName": "live.example.com",
            "DomainValidationOptions": [
                {"DomainName": "live.example.com", "HostedZoneId": "Z0123456789ABCDEFGHIJ"}
            ],
            "ValidationMethod": "DNS",
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Protocol": "HTTPS", "Port": 443, "Certificates": Match.any_value()},
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Protocol": "HTTP", "DefaultActions": [Match.object_like({"Type": "redirect"})]},
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup", {"HealthCheckPath": "/healthz"}
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "LoadBalancerAttributes": Match.array_with(
                [{"Key": "idle_timeout.timeout_seconds", "Value": "3600"}]
            )
        },
    )
    template.has_resource_properties(
        "AWS::Route53::RecordSet", {"Name": "live.example.com.", "Type": "A"}
    )


def test_grpc_shares_the_https_address_on_a_grpc_target_group(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": 8081,
            "ProtocolVersion": "GRPC",
            "HealthCheckPath": "/grpc.health.v1.Health/Check",
            "Matcher": {"GrpcCode": "0"},
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Conditions": [
                {
                    "Field": "path-pattern",
                    "PathPatternConfig": {
                        "Values": ["/streamscribe.v1.Transcription/*", "/grpc.health.v1.Health/*"]
                    },
                }
            ],
            "Priority": 10,
        },
    )
    ingest = containers(template)["ingest"]
    assert {"ContainerPort": 8081, "Protocol": "tcp"} in ingest["PortMappings"]
    assert {"Name": "STREAMSCRIBE_GRPC_PORT", "Value": "8081"} in ingest["Environment"]
    # the load balancer may reach the tasks' gRPC port
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress", {"FromPort": 8081, "ToPort": 8081, "IpProtocol": "tcp"}
    )


def test_the_translator_may_invoke_only_the_configured_model(template: Template) -> None:
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "bedrock" in json.dumps(statement["Action"])
    ]
    assert len(statements) == 1
    [statement] = statements
    assert statement["Action"] == "bedrock:InvokeModel"
    assert statement["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":bedrock:eu-west-2::foundation-model/amazon.nova-micro-v1:0",
            ],
        ]
    }


def test_without_translation_there_is_no_translator_and_no_bedrock_access() -> None:
    _, template = synth(
        InfraConfig(host_name="live", domain_name="example.com", hosted_zone_id="Z1")
    )
    assert "translator" not in containers(template)
    assert "bedrock" not in json.dumps(template.find_resources("AWS::IAM::Policy"))


def test_each_service_scales_on_its_own_signal(template: Template) -> None:
    def tracks(metric: str, service: str, target: float) -> None:
        template.has_resource_properties(
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            {
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                    {
                        "CustomizedMetricSpecification": {
                            "MetricName": metric,
                            "Namespace": NAMESPACE,
                            "Dimensions": [{"Name": "Service", "Value": service}],
                            "Statistic": "Average",
                        },
                        "TargetValue": target,
                    }
                ),
            },
        )

    tracks("UtteranceBacklogPerTranscriber", "transcriber", CONFIG.backlog_per_transcriber)
    tracks("SessionsPerSegmenter", "segmenter", CONFIG.sessions_per_segmenter)
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                    }
                }
            )
        },
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 1, "MaxCapacity": 6}
    )


def test_secrets_reach_tasks_only_as_secrets(template: Template) -> None:
    for name, container in containers(template).items():
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert not [k for k in environment if any(w in k for w in ("PASSWORD", "SECRET", "TOKEN"))]
        assert_real_settings(environment, where=f"task {name}")
        assert "rediss://" in json.dumps(environment["REDIS_URL"])
        secrets = {secret["Name"]: secret["ValueFrom"] for secret in container["Secrets"]}
        wanted = {"STREAMSCRIBE_REDIS_PASSWORD"} | (
            {"STREAMSCRIBE_TOKEN_SECRET"} if name == "ingest" else set()
        )
        assert set(secrets) == wanted
        assert all("Ref" in value for value in secrets.values())
        assert_real_settings(dict.fromkeys(secrets, ""), where=f"task {name} secrets")
    template.has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "TransitEncryptionEnabled": True,
            "AtRestEncryptionEnabled": True,
            "MultiAZEnabled": True,
            "AutomaticFailoverEnabled": True,
            "AuthToken": Match.any_value(),
        },
    )
    group = next(iter(template.find_resources("AWS::ElastiCache::ReplicationGroup").values()))
    assert "resolve:secretsmanager" in json.dumps(group["Properties"]["AuthToken"])


def test_logs_go_to_cloudwatch(template: Template) -> None:
    for container in containers(template).values():
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    template.resource_count_is("AWS::Logs::LogGroup", 5)  # four parts and the VPC flow log


def test_cdk_nag_has_no_unexplained_findings(
    synthesized: tuple[StreamscribeStack, Template],
) -> None:
    stack, _ = synthesized
    annotations = Annotations.from_stack(stack)
    pattern = Match.string_like_regexp("AwsSolutions-.*")
    findings = annotations.find_error("*", pattern) + annotations.find_warning("*", pattern)
    assert [f"{f.id}: {f.entry.data}" for f in findings] == []


def test_url_is_an_output(template: Template) -> None:
    template.has_output("Url", {"Value": "https://live.example.com/"})


def test_configuration_comes_from_env_and_names_what_is_missing(tmp_path: Any) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HOST_NAME=live\nDOMAIN_NAME=Example.com\nMODEL=large-v3\n")
    config = load_config(env_file, environ={"TRANSCRIBER_MAX": "8", "TRANSLATOR_ENABLED": "yes"})
    assert (config.fqdn, config.model, config.transcriber) == (
        "live.example.com",
        "large-v3",
        ServiceCounts(1, 8),
    )
    assert config.translator_enabled
    with pytest.raises(ConfigError, match="DOMAIN_NAME"):
        load_config(tmp_path / "none", environ={"HOST_NAME": "live"})
    with pytest.raises(ConfigError, match="TRANSCRIBER_MAX must be a number"):
        load_config(env_file, environ={"TRANSCRIBER_MAX": "lots"})
    with pytest.raises(ConfigError, match="HOST_NAME: 'no_way!' is not a DNS label"):
        load_config(tmp_path / "none", environ={"HOST_NAME": "no_way!", "DOMAIN_NAME": "x.org"})
    with pytest.raises(ConfigError, match="TRANSLATOR_ENABLED must be true or false, not 'maybe'"):
        load_config(env_file, environ={"TRANSLATOR_ENABLED": "maybe"})
    assert load_config(env_file, environ={"HOST_NAME": "Other"}).host_name == "other"  # env wins


def test_the_example_env_file_is_a_complete_configuration() -> None:
    from infra.config import load_config as load

    config = load(Path(__file__).parents[2] / ".env.example", environ={})
    assert config.fqdn == "live.example.com" and config.model == "large-v3"
    assert not config.translator_enabled
