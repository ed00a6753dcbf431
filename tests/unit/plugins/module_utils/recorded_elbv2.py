"""elbv2 answers as the API gives them: DescribeTargetGroups, DescribeTargetGroupAttributes and
DescribeTargetHealth, with the states and reasons of AWS's API reference (TargetHealth:
initial / healthy / unhealthy / unused / draining / unavailable and their Reason codes); the
shapes are those moto's elbv2 answered in the sandbox (ResponseMetadata left out)."""

from __future__ import annotations

from recorded_ssm import RecordedClient

ACCOUNT = "123456789012"
TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:%s:targetgroup/model-api/73e2d6bc24d8a067" % ACCOUNT
TG_NAME = "model-api"
VPC = "vpc-0c1a2b3c4d5e6f708"


class RecordedElbv2(RecordedClient):
    """A ``RecordedClient`` of elbv2."""

    def __init__(self, **answers):
        super().__init__("elbv2", **answers)


def target_groups(target_type="instance", port=8080, arn=TG_ARN, name=TG_NAME):
    return {
        "TargetGroups": [
            {
                "TargetGroupArn": arn,
                "TargetGroupName": name,
                "Protocol": "HTTP",
                "Port": port,
                "VpcId": VPC,
                "HealthCheckProtocol": "HTTP",
                "HealthCheckPort": "traffic-port",
                "HealthCheckEnabled": True,
                "HealthCheckIntervalSeconds": 30,
                "HealthCheckTimeoutSeconds": 5,
                "HealthyThresholdCount": 5,
                "UnhealthyThresholdCount": 2,
                "HealthCheckPath": "/health",
                "Matcher": {"HttpCode": "200"},
                "LoadBalancerArns": [
                    "arn:aws:elasticloadbalancing:eu-west-1:%s:loadbalancer/app/model-api/50dc6c495c0c9188" % ACCOUNT
                ],
                "TargetType": target_type,
                "ProtocolVersion": "HTTP1",
                "IpAddressType": "ipv4",
            }
        ]
    }


def attributes(delay="300"):
    return {
        "Attributes": [
            {"Key": "stickiness.enabled", "Value": "false"},
            {"Key": "deregistration_delay.timeout_seconds", "Value": delay},
            {"Key": "stickiness.type", "Value": "lb_cookie"},
            {"Key": "load_balancing.algorithm.type", "Value": "round_robin"},
            {"Key": "slow_start.duration_seconds", "Value": "0"},
        ]
    }


def target(instance_id, state, reason=None, description=None, port=8080):
    health = {"State": state}
    if reason:
        health["Reason"] = reason
    if description:
        health["Description"] = description
    return {"Target": {"Id": instance_id, "Port": port}, "HealthCheckPort": "8080", "TargetHealth": health}


def health(*entries):
    return {"TargetHealthDescriptions": list(entries)}


def healthy(instance_id, port=8080):
    return target(instance_id, "healthy", port=port)


def draining(instance_id):
    return target(instance_id, "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")


def gone(instance_id):
    return target(instance_id, "unused", "Target.NotRegistered", "Target is not registered to the target group")


def initial(instance_id):
    return target(instance_id, "initial", "Elb.RegistrationInProgress", "Target registration is in progress")


def unhealthy(instance_id):
    return target(
        instance_id,
        "unhealthy",
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [503]",
    )


def not_in_use(instance_id):
    return target(
        instance_id,
        "unused",
        "Target.NotInUse",
        "Target group is not configured to receive traffic from the load balancer",
    )
