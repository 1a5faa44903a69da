"""The workbench: the node's own people in a browser (login, sessions, pages)."""
