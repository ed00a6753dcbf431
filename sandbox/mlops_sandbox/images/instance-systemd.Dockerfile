# What AWS adds to an instance: the SSM agent and the instance metadata service (the
# sandbox's stand-ins, stdlib Python), as systemd units on the host image, which boots
# systemd as PID 1 (docker.service is the role's).
FROM {{PARENT_IMAGE}}
COPY agent /opt/mlops-sandbox
COPY units /etc/systemd/system
RUN mkdir -p /var/lib/amazon/ssm /etc/docker/certs.d \
 && python3 -c "import sys; assert sys.version_info >= (3, 9)" \
 && systemctl enable mlops-imds.service amazon-ssm-agent.service
ENV MLOPS_INSTANCE_KIND={{KIND}}
