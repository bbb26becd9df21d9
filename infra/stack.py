"""The stack: VPC, Redis, and each part as its own ECS service, scaled on its own signal."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import NAMESPACE, InfraConfig
from infra.redis_store import RedisStore, generated_secret

REPOSITORY = Path(__file__).parents[1]
INGEST_PORT = 8080
GRPC_PORT = 8081
GRPC_PATHS = ("/streamscribe.v1.Transcription/*", "/grpc.health.v1.Health/*")
"""The gRPC API's requests, routed by path on the HTTPS listener to a gRPC target group."""
METRICS_PORT = 9100
STREAMING_IDLE_TIMEOUT = Duration.seconds(3600)
"""The load balancer keeps a quiet WebSocket open this long (the protocol pings every 20 s)."""
READYZ = (
    "import sys, urllib.request; "
    f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/readyz', timeout=3)"
    ".status != 200)"
)


def scaling_metric(name: str, service: str) -> cloudwatch.Metric:
    """A metric the parts publish as CloudWatch EMF lines (``shared/cloudwatch.py``)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"Service": service},
        statistic="Average",
        period=Duration.minutes(1),
    )


class StreamscribeStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: InfraConfig, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
                ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            ],
            flow_logs={"all": ec2.FlowLogOptions()},
        )
        self.redis = RedisStore(self, "Redis", vpc=self.vpc, node_type=config.redis_node_type)
        self.token_secret = generated_secret(
            self, "TokenSecret", "streamscribe: signs access tokens (streamscribe token)"
        )
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=self.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.parts_group = ec2.SecurityGroup(
            self, "Parts", vpc=self.vpc, description="streamscribe parts"
        )
        self.redis.allow_from(self.parts_group)
        cpu_image = ecs.ContainerImage.from_asset(
            str(REPOSITORY), file="Dockerfile", build_args={"MODEL": "tiny.en"}
        )
        self.ingest = self._ingest(cpu_image)
        self.segmenter = self._segmenter(cpu_image)
        self.transcriber = self._transcriber()
        self.translator = self._translator(cpu_image) if config.translator_enabled else None
        CfnOutput(self, "Url", value=f"https://{config.fqdn}/", description="the page")
        CfnOutput(self, "StreamUrl", value=f"wss://{config.fqdn}/v1/stream")
        CfnOutput(
            self,
            "TokenSecretArn",
            value=self.token_secret.secret_arn,
            description="STREAMSCRIBE_TOKEN_SECRET for `streamscribe token`",
        )

    # -- what every part's container gets ---------------------------------------------------

    def _environment(self, **more: str) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis.url,
            "STREAMSCRIBE_CLOUDWATCH_NAMESPACE": NAMESPACE,
            "STREAMSCRIBE_METRICS_HOST": "0.0.0.0",
            "STREAMSCRIBE_METRICS_PORT": str(METRICS_PORT),
            "STREAMSCRIBE_MODEL": self.config.model,
            **more,
        }

    def _secrets(self) -> dict[str, ecs.Secret]:
        return {
            "STREAMSCRIBE_REDIS_PASSWORD": ecs.Secret.from_secrets_manager(self.redis.auth_token)
        }

    def _logging(self, part: str) -> ecs.LogDriver:
        group = logs.LogGroup(
            self,
            f"{part.title()}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        return ecs.LogDrivers.aws_logs(stream_prefix=part, log_group=group)

    def _worker_container(
        self, task: ecs.TaskDefinition, part: str, image: ecs.ContainerImage, **options: object
    ) -> ecs.ContainerDefinition:
        return task.add_container(
            part,
            image=image,
            command=[part],
            environment=self._environment(),
            secrets=self._secrets(),
            logging=self._logging(part),
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", READYZ],
                start_period=Duration.seconds(120),
            ),
            stop_timeout=Duration.seconds(120),
            **options,  # type: ignore[arg-type]
        )

    # -- the parts -------------------------------------------------------------------------

    def _ingest(
        self, image: ecs.ContainerImage
    ) -> ecs_patterns.ApplicationLoadBalancedFargateService:
        config = self.config
        zone = (
            route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.domain_name
            )
            if config.hosted_zone_id
            else route53.HostedZone.from_lookup(self, "Zone", domain_name=config.domain_name)
        )
        certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=config.fqdn,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        task = ecs.FargateTaskDefinition(self, "IngestTask", cpu=1024, memory_limit_mib=2048)
        task.add_container(
            "ingest",
            image=image,
            command=["ingest"],
            environment=self._environment(
                STREAMSCRIBE_HOST="0.0.0.0",
                STREAMSCRIBE_PORT=str(INGEST_PORT),
                STREAMSCRIBE_GRPC_PORT=str(GRPC_PORT),
            ),
            secrets={
                **self._secrets(),
                "STREAMSCRIBE_TOKEN_SECRET": ecs.Secret.from_secrets_manager(self.token_secret),
            },
            logging=self._logging("ingest"),
            port_mappings=[
                ecs.PortMapping(container_port=INGEST_PORT),
                ecs.PortMapping(container_port=GRPC_PORT),
            ],
            stop_timeout=Duration.seconds(120),
        )
        logs_bucket = s3.Bucket(
            self,
            "LoadBalancerLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Ingest",
            cluster=self.cluster,
            task_definition=task,
            desired_count=config.ingest.minimum,
            certificate=certificate,
            domain_name=config.fqdn,
            domain_zone=zone,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            redirect_http=True,
            idle_timeout=STREAMING_IDLE_TIMEOUT,
            public_load_balancer=True,
            security_groups=[self.parts_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        service.load_balancer.log_access_logs(logs_bucket, prefix="alb")
        service.target_group.configure_health_check(
            path="/healthz", healthy_http_codes="200", interval=Duration.seconds(15)
        )
        service.target_group.set_attribute("deregistration_delay.timeout_seconds", "120")
        self._grpc_targets(service)
        scaling = service.service.auto_scale_task_count(
            min_capacity=max(1, config.ingest.minimum), max_capacity=config.ingest.maximum
        )
        scaling.scale_on_cpu_utilization(
            "Cpu", target_utilization_percent=config.ingest_cpu_percent
        )
        return service

    def _grpc_targets(self, service: ecs_patterns.ApplicationLoadBalancedFargateService) -> None:
        """The gRPC API on the same HTTPS address: its paths go to the tasks' gRPC port over
        HTTP/2 (an ALB gRPC target group; its health check is the standard health service)."""
        targets = elbv2.ApplicationTargetGroup(
            self,
            "GrpcTargets",
            vpc=self.cluster.vpc,
            port=GRPC_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            protocol_version=elbv2.ApplicationProtocolVersion.GRPC,
            target_type=elbv2.TargetType.IP,
            targets=[
                service.service.load_balancer_target(
                    container_name="ingest", container_port=GRPC_PORT
                )
            ],
            health_check=elbv2.HealthCheck(
                path="/grpc.health.v1.Health/Check",
                healthy_grpc_codes="0",
                interval=Duration.seconds(15),
            ),
            deregistration_delay=Duration.seconds(120),
        )
        service.listener.add_target_groups(
            "Grpc",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(list(GRPC_PATHS))],
            target_groups=[targets],
        )

    def _segmenter(self, image: ecs.ContainerImage) -> ecs.FargateService:
        config = self.config
        task = ecs.FargateTaskDefinition(self, "SegmenterTask", cpu=1024, memory_limit_mib=2048)
        self._worker_container(task, "segmenter", image)
        service = ecs.FargateService(
            self,
            "Segmenter",
            cluster=self.cluster,
            task_definition=task,
            desired_count=max(1, config.segmenter.minimum),
            security_groups=[self.parts_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        scaling = service.auto_scale_task_count(
            min_capacity=max(1, config.segmenter.minimum), max_capacity=config.segmenter.maximum
        )
        scaling.scale_to_track_custom_metric(
            "Sessions",
            metric=scaling_metric("SessionsPerSegmenter", "segmenter"),
            target_value=config.sessions_per_segmenter,
        )
        return service

    def _transcriber(self) -> ecs.Ec2Service:
        config = self.config
        instance_role = iam.Role(
            self,
            "GpuInstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonEC2ContainerServiceforEC2Role"
                ),
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"),
            ],
        )
        template = ec2.LaunchTemplate(
            self,
            "GpuLaunchTemplate",
            machine_image=ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.GPU),
            instance_type=ec2.InstanceType(config.gpu_instance_type),
            role=instance_role,
            user_data=ec2.UserData.for_linux(),
            security_group=self.parts_group,
            require_imdsv2=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        100, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        group = autoscaling.AutoScalingGroup(
            self,
            "GpuInstances",
            vpc=self.vpc,
            launch_template=template,
            min_capacity=0,
            max_capacity=config.transcriber.maximum,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        provider = ecs.AsgCapacityProvider(
            self,
            "GpuCapacity",
            auto_scaling_group=group,
            enable_managed_scaling=True,
            enable_managed_termination_protection=False,  # so that `cdk destroy` works
            enable_managed_draining=True,  # ECS drains tasks before an instance goes
            target_capacity_percent=100,
        )
        self.cluster.add_asg_capacity_provider(provider)
        task = ecs.Ec2TaskDefinition(self, "TranscriberTask", network_mode=ecs.NetworkMode.AWS_VPC)
        self._worker_container(
            task,
            "transcriber",
            ecs.ContainerImage.from_asset(
                str(REPOSITORY), file="Dockerfile.gpu", build_args={"MODEL": config.model}
            ),
            gpu_count=1,
            memory_reservation_mib=8192,
        )
        service = ecs.Ec2Service(
            self,
            "Transcriber",
            cluster=self.cluster,
            task_definition=task,
            desired_count=config.transcriber.minimum,
            security_groups=[self.parts_group],
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=provider.capacity_provider_name, weight=1
                )
            ],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        scaling = service.auto_scale_task_count(
            min_capacity=config.transcriber.minimum, max_capacity=config.transcriber.maximum
        )
        scaling.scale_to_track_custom_metric(
            "Backlog",
            metric=scaling_metric("UtteranceBacklogPerTranscriber", "transcriber"),
            target_value=config.backlog_per_transcriber,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        return service

    def _translator(self, image: ecs.ContainerImage) -> ecs.FargateService:
        config = self.config
        task = ecs.FargateTaskDefinition(self, "TranslatorTask", cpu=512, memory_limit_mib=1024)
        container = self._worker_container(task, "translator", image)
        container.add_environment("STREAMSCRIBE_TRANSLATOR_BACKEND", "bedrock")
        container.add_environment("STREAMSCRIBE_BEDROCK_MODEL_ID", config.bedrock_model_id)
        container.add_environment("STREAMSCRIBE_BEDROCK_REGION", self.region)
        task.add_to_task_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[
                    f"arn:{self.partition}:bedrock:{self.region}::foundation-model/"
                    f"{config.bedrock_model_id}"
                ],
            )
        )
        return ecs.FargateService(
            self,
            "Translator",
            cluster=self.cluster,
            task_definition=task,
            desired_count=1,
            security_groups=[self.parts_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
