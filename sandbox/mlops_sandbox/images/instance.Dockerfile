# What AWS adds to an instance: the SSM agent and the instance metadata service (the
# sandbox's stand-ins, stdlib Python), started by a small init as PID 1.
FROM {{PARENT_IMAGE}}
COPY agent /opt/mlops-sandbox
RUN mkdir -p /var/lib/amazon/ssm /etc/docker/certs.d \
 && python3 -c "import sys; assert sys.version_info >= (3, 9)"
ENV MLOPS_INSTANCE_KIND={{KIND}}
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/python3", "/opt/mlops-sandbox/init.py"]
