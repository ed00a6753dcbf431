"""The sandbox's SSM Run Command service (``python -m mlops_sandbox.ssm``).

Layers, each a module: ``shapes`` (request validation from botocore's model), ``documents``
(the documents and their parameters), ``fold`` (status rules), ``engine`` (commands,
invocations, the scheduler, simulated instances), ``api`` (the SSM actions), ``instances``
(the registry), ``control`` and ``faults`` (the ``/_sandbox`` controls), ``cwlogs``
(output to CloudWatch), ``server`` (HTTP). The agent that runs inside instances lives in
``mlops_sandbox/agent``.
"""
