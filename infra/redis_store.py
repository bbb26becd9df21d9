"""The shared Redis: ElastiCache for Redis, one shard with a replica in another zone.

Chosen over MemoryDB (durable, but slower writes and about twice the price) and ElastiCache
Serverless (no consumer-group latency guarantees at small sizes, and its per-ECPU price
penalises the many small XADDs of streaming audio): the pipeline needs fast streams and
pub/sub, and its own delivery rules cover a failover.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

REDIS_PORT = 6380
"""Not the default 6379 (cdk-nag AwsSolutions-AEC5)."""


def generated_secret(scope: Construct, id: str, description: str) -> secretsmanager.Secret:
    """A 64-character secret made by Secrets Manager (letters and digits: safe in URLs)."""
    return secretsmanager.Secret(
        scope,
        id,
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            exclude_punctuation=True, password_length=64
        ),
    )


class RedisStore(Construct):
    """Encrypted in transit and at rest, AUTH token from Secrets Manager, Multi-AZ."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, node_type: str) -> None:
        super().__init__(scope, id)
        self.auth_token = generated_secret(
            self, "AuthToken", "streamscribe: ElastiCache AUTH token"
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="streamscribe Redis",
            allow_all_outbound=False,
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="streamscribe Redis",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        self.group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description="streamscribe pipeline state",
            engine="redis",
            engine_version="7.1",
            cache_node_type=node_type,
            num_node_groups=1,
            replicas_per_node_group=1,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            auth_token=self.auth_token.secret_value.unsafe_unwrap(),
            port=REDIS_PORT,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.security_group.security_group_id],
        )

    @property
    def url(self) -> str:
        """``rediss://`` without the password (each task gets the token as a secret)."""
        return f"rediss://{self.group.attr_primary_end_point_address}:{REDIS_PORT}/0"

    def allow_from(self, peer: ec2.ISecurityGroup) -> None:
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(REDIS_PORT), "streamscribe parts to Redis"
        )
