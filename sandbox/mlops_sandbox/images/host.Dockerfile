# An EC2 model host as the release flow expects it: Docker engine + compose v2, Python 3,
# Ansible, the AWS CLI, boto3 and the docker SDK (a venv on PATH, so `which python3` finds them).
FROM {{BASE_IMAGE}}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends docker.io iptables unzip python3-venv sudo less \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /etc/docker/certs.d /usr/local/lib/docker/cli-plugins
COPY docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/ansible \
 && /opt/ansible/bin/pip install --quiet --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
 && rm -rf /tmp/wheels /root/.cache \
 && chmod 0755 /usr/local/lib/docker/cli-plugins/docker-compose
ENV PATH=/opt/ansible/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
