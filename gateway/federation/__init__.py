"""Federated queries: answered by following live links from node to node.

``engine`` walks the links a query needs, fetching each document from the node that
owns its namespace (according to the registry) with the asking node's own token, and
evaluates the query in memory over what it fetched; nothing is kept afterwards.
"""
