# Light instances: the SSM agent and the instance metadata service (the sandbox's
# stand-ins, stdlib Python) on the plain base image, started by a small init as PID 1
# (no systemd, no engine: the scale stand-in).
FROM {{PARENT_IMAGE}}
COPY agent /opt/mlops-sandbox
RUN mkdir -p /var/lib/amazon/ssm \
 && python3 -c "import sys; assert sys.version_info >= (3, 9)"
ENV MLOPS_INSTANCE_KIND={{KIND}}
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/python3", "/opt/mlops-sandbox/init.py"]
