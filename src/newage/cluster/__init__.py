"""Several server processes as one cluster, over Redis (docs/cluster.md).

An adapter like ``store/``: it implements the delivery port across nodes and
knows nothing of Socket.IO; ``app.py`` wires it when ``redisUrl`` is set.
"""
